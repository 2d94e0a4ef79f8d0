"""The inside of `labkit.train.fit`: one epoch of optimisation steps, and validation.

`fit` (``labkit.train.loop``) builds a `TrainStep` and calls `TrainStep.train_epoch` and
`validate` once per epoch; ``labkit bench`` times the very same step. Batches are
``Batch(x, y, ...)`` or ``(x, y)`` pairs: x ``(B, C, H, W)`` float, y ``(B, 1, H, W)`` in {0, 1}.

Scores are computed from per-image confusion counts (tp, fp, fn, tn), which add up across
batches and across torchrun's processes (`labkit.train.distributed.gather_rows`).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import nn

from labkit.device import autocast, channels_last
from labkit.metrics import SCORE_NAMES, confusion_counts, dice, nanmean, scores_from_counts
from labkit.models.heads import final_output, infection_probability
from labkit.progress import batch_bar, drawn_when_closed
from labkit.train.config import TrainConfig
from labkit.train.distributed import Ranks, gather_rows

__all__ = ["Forward", "NonFiniteLossError", "TrainStep", "batch_xy", "scores", "validate"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the message names the epoch and step)."""


def batch_xy(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) on ``device`` from a ``Batch(x, y, lung, index)`` or an ``(x, y, ...)`` tuple.

    Raises:
        ValueError: the batch is neither, or x is not a float (B, C, H, W) tensor.
    """
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


def _counts(out: Any, y: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-image (tp, fp, fn, tn) of the final output: (B, 4) int64, on the device (no sync)."""
    pred = infection_probability(final_output(out).detach()) >= threshold  # (B, 1, H, W) bool
    return torch.stack(confusion_counts(pred, y > 0.5), 1)


def scores(counts: torch.Tensor) -> dict[str, float]:
    """The scores `fit` records, from per-image counts ``(N, 4)`` = (tp, fp, fn, tn).

    Returns:
        ``dice``, ``iou``, ``sensitivity``, ``precision``: per-image means over the images
        with infection (empty masks excluded, the labkit policy); ``dice_all``: per-image
        mean Dice over *all* images, an empty mask scoring 1 when nothing is predicted and
        0 otherwise (``empty_score=1``); ``dice_pooled``: one Dice of the summed counts.
    """
    tp, fp, fn, tn = counts.unbind(1)
    out = {k: nanmean(v)[0] for k, v in scores_from_counts(tp, fp, fn, tn).items()}
    out["dice_all"] = nanmean(dice(tp, fp, fn, tn, empty_score=1.0))[0]
    sums = [c.sum().reshape(1) for c in (tp, fp, fn, tn)]
    out["dice_pooled"] = float(dice(*sums)[0])  # NaN when no image has infection
    return out


class Forward:
    """Calls the model, through ``torch.compile`` if asked; on a compile failure (compilers
    fail lazily, at the first call) it warns once and runs the plain model from then on.

    Args:
        model: the module to call (a ``DistributedDataParallel`` wrapper under torchrun).
        compile: try ``torch.compile(model)``.
    """

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


class TrainStep:
    """The optimisation step, and the loop over one epoch of training batches.

    Args:
        forward: a `Forward` of the model being trained.
        loss_fn: ``loss(logits, target) -> scalar``.
        optimizer: over the model's trainable parameters.
        scaler: a ``torch.amp.GradScaler`` (active only under float16).
        device: where batches go.
        dtype: the autocast dtype, or None for float32.
        cfg: the `TrainConfig` (``channels_last``, ``grad_clip``, ``log_every``,
            ``threshold``, ``progress``).
        ranks: this process's rank and world size (`labkit.train.distributed`).
    """

    def __init__(
        self,
        forward: Forward,
        loss_fn: Any,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        device: torch.device,
        dtype: torch.dtype | None,
        cfg: TrainConfig,
        ranks: Ranks | None = None,
    ) -> None:
        self.forward, self.loss_fn, self.optimizer, self.scaler = (
            forward,
            loss_fn,
            optimizer,
            scaler,
        )
        self.device, self.dtype, self.cfg = device, dtype, cfg
        self.ranks = ranks or Ranks()
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def train_epoch(self, loader: Any, epoch: int) -> tuple[dict[str, float], tuple[int, ...]]:
        """Train on every batch once.

        Returns:
            ``({"train_loss", "train_dice", "train_iou"}, shape of the last x)``: the mean
            loss per image and the Dice/IoU of the training batches as they were predicted
            during the epoch (training mode, augmented, weights changing), over every rank.
        """
        cfg, opt, scaler = self.cfg, self.optimizer, self.scaler
        losses, sizes, counts, checked = [], [], [], 0  # on the device: no GPU sync per step
        show = cfg.progress and self.ranks.is_main
        bar = batch_bar(loader, f"train {epoch}", show)
        with self._join(), drawn_when_closed(bar):
            for step, batch in enumerate(loader, start=1):
                x, y = batch_xy(batch, self.device)  # x: (B, C, H, W) float, y: (B, 1, H, W)
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
                counts.append(_counts(out, y, cfg.threshold))  # (B, 4)
                if step % cfg.log_every == 0:  # reading a value waits for the GPU
                    checked = self._check(losses, checked, epoch)
                    bar.set_postfix(loss=f"{losses[-1].item():.4f}")
                bar.update()
        if not losses:
            raise ValueError("the training loader yielded no batches (is the training set empty?)")
        self._check(losses, checked, epoch)
        per_step = torch.stack(losses).float().cpu()  # (steps,)
        weights = torch.tensor(sizes, dtype=torch.float32)  # images per step
        # every rank's (loss sum, images) and per-image counts: the epoch over all ranks
        mine = torch.stack([(per_step * weights).sum(), weights.sum()])[None]  # (1, 2)
        totals = gather_rows(mine, self.ranks)  # (world_size, 2)
        s = scores(gather_rows(torch.cat(counts), self.ranks))
        result = {"train_loss": float(totals[:, 0].sum() / totals[:, 1].sum())}
        result.update(train_dice=s["dice"], train_iou=s["iou"])
        return result, tuple(x.shape)

    def _join(self) -> Any:
        """Under DDP, let ranks whose shard has fewer batches wait for the others."""
        model = self.forward.model
        if isinstance(model, nn.parallel.DistributedDataParallel):
            from torch.distributed.algorithms.join import Join

            return Join([model])
        return contextlib.nullcontext()

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
def validate(
    forward: Forward,
    loader: Any,
    loss_fn: Any,
    device: torch.device,
    dtype: torch.dtype | None,
    cfg: TrainConfig,
    ranks: Ranks | None = None,
) -> dict[str, float]:
    """Validation loss (mean per image) and scores of the final output.

    Args:
        forward, loss_fn, device, dtype, cfg: as for `TrainStep`.
        loader: the validation batches (this rank's shard under torchrun).
        ranks: when given with a world size > 1, every rank's images are gathered, so
            every rank returns the same numbers over the whole validation set.

    Returns:
        ``val_loss``, ``val_dice``, ``val_iou``, ``val_sensitivity``, ``val_precision``
        (per image, images with an empty mask excluded), ``val_dice_all`` (per image over
        all images, ``empty_score=1``), ``val_dice_pooled`` (Dice of the summed counts).

    Raises:
        ValueError: the loader is empty, or the model output NaN.
    """
    ranks = ranks or Ranks()
    total, count, counts = torch.zeros((), device=device), 0, []
    nan = torch.zeros((), dtype=torch.long, device=device)  # NaN outputs would count as negative
    show = cfg.progress and ranks.is_main
    with drawn_when_closed(batch_bar(loader, "val", show)) as bar:
        for batch in loader:
            x, y = batch_xy(batch, device)
            if cfg.channels_last:
                x = channels_last(x)
            with autocast(device, dtype):
                out = final_output(forward(x)).float()  # (B, 1|2, H, W) logits
            total += loss_fn(out, y).detach() * x.shape[0]
            count += x.shape[0]
            nan += torch.isnan(out).any((1, 2, 3)).sum()
            counts.append(_counts(out, y, cfg.threshold))
            bar.update()
    if count == 0:
        raise ValueError("the validation loader yielded no batches (is the validation set empty?)")
    if int(nan):
        raise ValueError(f"the model output NaN on {int(nan)} validation image(s)")
    totals = gather_rows(torch.stack([total.cpu(), torch.tensor(float(count))])[None], ranks)
    s = scores(gather_rows(torch.cat(counts), ranks))
    out = {"val_loss": float(totals[:, 0].sum() / totals[:, 1].sum())}
    for name in (*SCORE_NAMES, "dice_all", "dice_pooled"):
        out[f"val_{name}"] = s[name]
    return out
