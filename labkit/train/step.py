"""The inside of `labkit.train.fit`: one epoch of optimisation steps, and validation.

`fit` (in ``labkit.train``) builds a `_Step` and calls ``train_epoch`` and `_validate` once per
epoch; ``labkit bench`` times the very same step. Batches are ``Batch(x, y, ...)`` or
``(x, y)`` pairs: x ``(B, C, H, W)`` float, y ``(B, 1, H, W)`` in {0, 1}.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from labkit.train.config import TrainConfig


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the message names the epoch and step)."""


def _xy(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) on ``device`` from a ``Batch(x, y, lung, index)`` or an ``(x, y, ...)`` tuple."""
    if hasattr(batch, "x") and hasattr(batch, "y"):
        x, y = batch.x, batch.y
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
    else:
        raise ValueError(
            f"a batch must be Batch(x, y, ...) or an (x, y) pair, got {type(batch).__name__}"
        )
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim == 4):
        raise ValueError(
            f"batch x must be a float tensor (B, C, H, W), got {getattr(x, 'shape', x)!r}"
        )
    return x.to(device, non_blocking=True), y.to(device, torch.float32, non_blocking=True)


def _final(out: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """The final output of a model: element 0 of a deep-supervision list."""
    return out[0] if isinstance(out, (list, tuple)) else out


class _Forward:
    """Calls the model, through ``torch.compile`` if asked; on a compile failure (compilers
    fail lazily, at the first call) it warns once and runs the plain model from then on."""

    def __init__(self, model: nn.Module, compile: bool) -> None:
        self.model, self.compiled = model, None
        if compile:
            try:
                self.compiled = torch.compile(model)
            except Exception as err:  # e.g. a Python version torch.compile does not support
                warnings.warn(f"torch.compile failed, training without it: {err}", stacklevel=3)

    def __call__(self, x: torch.Tensor) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as err:  # no C++ compiler, unsupported op, ...
                warnings.warn(f"torch.compile failed, training without it: {err}", stacklevel=2)
                self.compiled = None
        return self.model(x)


class _Step:
    """The optimisation step, and the loop over one epoch of training batches."""

    def __init__(self, forward, loss_fn, optimizer, scaler, device, dtype, cfg) -> None:
        self.forward, self.loss_fn, self.optimizer, self.scaler = (
            forward,
            loss_fn,
            optimizer,
            scaler,
        )
        self.device, self.dtype, self.cfg = device, dtype, cfg
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def train_epoch(self, loader: Any, epoch: int) -> tuple[float, tuple[int, ...]]:
        """Train on every batch once; returns (mean loss per image, shape of the last x)."""
        from tqdm.auto import tqdm

        from labkit.device import autocast, channels_last

        cfg, opt, scaler = self.cfg, self.optimizer, self.scaler
        losses, sizes, checked = [], [], 0  # losses stay on the device: no GPU sync per step
        bar = tqdm(loader, desc=f"train {epoch}", leave=False, disable=not cfg.progress)
        for step, batch in enumerate(bar, start=1):
            x, y = _xy(batch, self.device)  # x: (B, C, H, W) float, y: (B, 1, H, W) in {0, 1}
            if cfg.channels_last:
                x = channels_last(x)
            with autocast(self.device, self.dtype):  # bf16/fp16 convs on GPUs, fp32 on CPU
                out = self.forward(x)  # logits (B, 1|2, H, W), or a list (deep supervision)
            loss = self.loss_fn(out, y)  # scalar; labkit losses compute in float32
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # the scaler multiplies only under fp16
            if cfg.grad_clip is not None:
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            scaler.step(opt)  # skips the step if fp16 gradients overflowed
            scaler.update()
            losses.append(loss.detach())
            sizes.append(x.shape[0])
            if step % cfg.log_every == 0:  # reading a value waits for the GPU: not every step
                checked = self._check(losses, checked, epoch)
                bar.set_postfix(loss=f"{losses[-1].item():.4f}")
        if not losses:
            raise ValueError("the training loader yielded no batches (is the training set empty?)")
        self._check(losses, checked, epoch)
        per_step = torch.stack(losses).float().cpu()  # (steps,)
        weights = torch.tensor(sizes, dtype=torch.float32)  # images per step
        return float((per_step * weights).sum() / weights.sum()), tuple(x.shape)

    @staticmethod
    def _check(losses: list[torch.Tensor], checked: int, epoch: int) -> int:
        """Raise if any loss since step ``checked`` is NaN/inf; return how many are checked."""
        if checked == len(losses):
            return checked
        new = torch.stack(losses[checked:]).float()
        bad = (~torch.isfinite(new)).nonzero()
        if bad.numel():
            i = checked + int(bad[0, 0])
            raise NonFiniteLossError(
                f"the training loss became {losses[i].item()} at epoch {epoch}, step {i + 1}. "
                "Usual causes: a learning rate that is too high (try 10x lower), no gradient "
                "clipping (try grad_clip=1.0), or NaN/inf values in the input images."
            )
        return len(losses)


@torch.no_grad()
def _validate(forward, loader, loss_fn, device, dtype, cfg: TrainConfig) -> dict[str, float]:
    """Validation loss (mean per image) and per-image metrics of the final output."""
    from tqdm.auto import tqdm

    from labkit.device import autocast, channels_last
    from labkit.metrics import MetricAccumulator

    acc = MetricAccumulator(threshold=cfg.threshold)
    total, count = torch.zeros((), device=device), 0
    for batch in tqdm(loader, desc="val", leave=False, disable=not cfg.progress):
        x, y = _xy(batch, device)
        if cfg.channels_last:
            x = channels_last(x)
        with autocast(device, dtype):
            out = _final(forward(x)).float()  # (B, 1|2, H, W) logits
        total += loss_fn(out, y).detach() * x.shape[0]
        count += x.shape[0]
        acc.update(out, y)
    if count == 0:
        raise ValueError("the validation loader yielded no batches (is the validation set empty?)")
    scores = acc.compute()
    out = {"val_loss": float(total) / count}
    for name in ("dice", "iou", "sensitivity", "precision"):
        out[f"val_{name}"] = float(scores[name])
    return out
