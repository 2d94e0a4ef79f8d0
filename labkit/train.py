"""Training: ``TrainConfig``, ``fit(model, train, val, config)`` and the ``History`` it returns.

The loop in `fit` is written out by hand so you can read it top to bottom: one epoch is
"train on every batch, then score the validation set", and everything else (learning-rate
schedule, early stopping, checkpoints, time budget) happens between epochs.

Augmentation belongs to the data loader, not to `fit`: pass
``BatchLoader(train_data, augment=Augment(...))`` for the training set and no ``augment`` for
validation. `fit` then never has to know whether a batch is augmented, and the validation
set can never be augmented by accident.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

MONITORS = {"val_dice": "max", "val_iou": "max", "val_loss": "min"}  # metric -> better when
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = (None, "plateau", "cosine")
STOP_REASONS = ("completed", "early_stopping", "time_budget")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the message names the epoch and step)."""


@dataclass
class TrainConfig:
    """Everything `fit` needs to know besides the model and the data.

    Args:
        epochs: passes over the training set.
        batch_size: informational when you pass loaders (the loader sets the batch size);
            ``labkit train`` uses it to build them.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"adamw"`` (decoupled weight decay).
        weight_decay: L2 (adam) or decoupled (adamw) weight decay, >= 0.
        loss: a name for ``labkit.losses.build_loss`` (``"bce"``, ``"dice_bce"``, ...) or any
            ``nn.Module`` called as ``loss(logits, target)``.
        deep_supervision: wrap the loss in ``DeepSupervisionLoss`` (0.5 on the final
            output, 0.5 spread over the auxiliary heads) for models that return a list.
        scheduler: ``None``, ``"plateau"`` (multiply lr by ``lr_factor`` after ``lr_patience``
            epochs without improvement of ``monitor``) or ``"cosine"`` (cosine decay to 0
            over ``epochs``).
        lr_patience: epochs without improvement before ``"plateau"`` lowers the lr.
        lr_factor: factor ``"plateau"`` multiplies the lr by, in (0, 1).
        grad_clip: clip the gradient norm to this value (report 003 uses 1.0), or None.
        patience: early stopping: stop after this many epochs without improvement of
            ``monitor``; None trains all ``epochs``.
        monitor: ``"val_dice"`` (default, higher is better), ``"val_iou"`` or ``"val_loss"``
            (lower is better). Also chooses the best checkpoint.
        amp: mixed precision where it helps: bf16 on recent GPUs, fp16 + GradScaler on
            older ones, none on CPU/MPS (see ``labkit.device``).
        channels_last: NHWC memory layout for model and inputs (faster convs on GPUs).
        compile: ``torch.compile`` the model; falls back to eager with a warning if it fails.
        cudnn_benchmark: on CUDA, let cuDNN time its convolution algorithms on the first
            batches and keep the fastest (batches here all have one size, so this pays);
            False gives bit-for-bit repeatable GPU runs instead.
        time_budget_min: stop cleanly after the epoch during which this many minutes have
            passed since `fit` was called (a Colab session, CI), or None. Resume from
            ``last.pt`` in the next session.
        seed: seeds python, numpy and torch at the start of `fit`.
        threshold: probability threshold for the validation metrics.
        device: ``"cuda"``, ``"cpu"``, ... or None to choose automatically.
        out_dir: folder for ``best.pt`` (best ``monitor`` so far, weights only) and
            ``last.pt`` (every epoch, with optimizer and random states: resume from it).
            None saves nothing.
        progress: show tqdm progress bars (epochs; batches in a bar that disappears).
        log_every: steps between loss read-outs; each read-out updates the batch bar and
            checks for NaN/inf. Reading a GPU loss waits for the GPU, so not every step.
    """

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    loss: str | nn.Module = "bce"
    deep_supervision: bool = False
    scheduler: str | None = None
    lr_patience: int = 3
    lr_factor: float = 0.5
    grad_clip: float | None = None
    patience: int | None = None
    monitor: str = "val_dice"
    amp: bool = True
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = True
    time_budget_min: float | None = None
    seed: int = 0
    threshold: float = 0.5
    device: str | None = None
    out_dir: str | Path | None = None
    progress: bool = True
    log_every: int = 10

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(
                    f"TrainConfig.{name} must be {expected}, got {getattr(self, name)!r}"
                )

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        need(is_int(self.epochs) and self.epochs >= 1, "epochs", "an int >= 1")
        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an int >= 1")
        need(is_num(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(
            isinstance(self.loss, (str, nn.Module)) or callable(self.loss),
            "loss",
            "a loss name (see labkit.losses.LOSSES) or an nn.Module",
        )
        need(self.scheduler in SCHEDULERS, "scheduler", f"one of {SCHEDULERS}")
        need(is_int(self.lr_patience) and self.lr_patience >= 0, "lr_patience", "an int >= 0")
        need(is_num(self.lr_factor) and 0 < self.lr_factor < 1, "lr_factor", "in (0, 1)")
        need(
            self.grad_clip is None or (is_num(self.grad_clip) and self.grad_clip > 0),
            "grad_clip",
            "None or a number > 0",
        )
        need(
            self.patience is None or (is_int(self.patience) and self.patience >= 1),
            "patience",
            "None or an int >= 1",
        )
        need(self.monitor in MONITORS, "monitor", f"one of {tuple(MONITORS)}")
        need(
            self.time_budget_min is None
            or (is_num(self.time_budget_min) and self.time_budget_min > 0),
            "time_budget_min",
            "None or a number of minutes > 0",
        )
        need(is_int(self.seed) and self.seed >= 0, "seed", "an int >= 0")
        need(is_num(self.threshold) and 0 < self.threshold < 1, "threshold", "in (0, 1)")
        need(is_int(self.log_every) and self.log_every >= 1, "log_every", "an int >= 1")
        for flag in ("deep_supervision", "amp", "channels_last", "compile", "cudnn_benchmark",
                     "progress"):  # fmt: skip
            need(isinstance(getattr(self, flag), bool), flag, "True or False")
        if isinstance(self.loss, str):
            from labkit.losses import LOSSES

            need(self.loss in LOSSES, "loss", f"one of {tuple(LOSSES)} or an nn.Module")

    @property
    def mode(self) -> str:
        """``"max"`` if a larger ``monitor`` is better, else ``"min"``."""
        return MONITORS[self.monitor]

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (a loss module becomes its class name), for JSON and checkpoints."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif not (value is None or isinstance(value, (bool, int, float, str))):
                value = type(value).__name__
            out[f.name] = value
        return out


@dataclass
class History:
    """What happened in each epoch (lists indexed by epoch - 1) and how training ended.

    ``best_epoch`` / ``best_metric`` refer to ``monitor``; ``stopped_reason`` is one of
    ``"completed"``, ``"early_stopping"``, ``"time_budget"``; ``train_seconds`` is the total
    wall time of all epochs (across resumes).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_dice: list[float] = field(default_factory=list)
    val_iou: list[float] = field(default_factory=list)
    val_sensitivity: list[float] = field(default_factory=list)
    val_precision: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    monitor: str = "val_dice"
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_reason: str = "completed"
    train_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN stays NaN; ``json.dumps`` writes it as ``NaN``)."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v)
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Inverse of `to_dict` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(
            **{k: (list(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        )


def make_config(config: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """``config`` (or the defaults) with ``overrides`` applied and validated."""
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown}")
    return replace(config, **overrides)


def fit(
    model: nn.Module,
    train: Any,
    val: Any,
    config: TrainConfig | None = None,
    *,
    resume_from: str | Path | None = None,
    **overrides: Any,
) -> History:
    """Train ``model`` on ``train``, score it on ``val`` after every epoch.

    Args:
        model: any ``nn.Module`` returning logits ``(B, 1|2, H, W)``, or a list of them
            (deep supervision, final output first) in training mode.
        train: a ``labkit.data.BatchLoader`` or any iterable of ``Batch(x, y, ...)`` or
            ``(x, y)`` pairs; ``set_epoch(epoch)`` is called on it if it has one, so the
            shuffle order (and augmentation) of every epoch is reproducible.
        val: the same for validation (not shuffled, not augmented).
        config: a `TrainConfig`; ``**overrides`` replace its fields
            (``fit(model, tr, va, epochs=3, lr=1e-3)``).
        resume_from: a ``last.pt`` written by an earlier `fit`: continue after its epoch
            with its weights, optimizer, schedule, history and random states.

    Returns:
        The `History` (also stored in ``out_dir/last.pt`` when ``out_dir`` is set).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the message names epoch and step).
    """
    from labkit import checkpoint as ckpt
    from labkit.device import amp_dtype, make_grad_scaler, pick_device, seed_everything
    from labkit.device import channels_last as to_channels_last
    from labkit.losses import DeepSupervisionLoss, build_loss

    cfg = make_config(config, **overrides)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    model = model.to(device)
    if cfg.channels_last:
        model = to_channels_last(model)
    loss_fn = build_loss(cfg.loss) if isinstance(cfg.loss, str) else cfg.loss
    if cfg.deep_supervision and not isinstance(loss_fn, DeepSupervisionLoss):
        loss_fn = DeepSupervisionLoss(loss_fn)  # 0.5 final + 0.5 over the auxiliary heads
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    dtype = amp_dtype(device, cfg.amp)  # bfloat16, float16 or None (fp32)
    scaler = make_grad_scaler(device, dtype)  # only active for float16
    forward = _Forward(model, cfg.compile)
    step = _Step(forward, loss_fn, optimizer, scaler, device, dtype, cfg)

    history = History(monitor=cfg.monitor)
    bad_epochs = 0  # epochs since the monitored metric last improved
    data_spec: dict[str, Any] = {}
    start = 1
    if resume_from is not None:
        state = ckpt.load_checkpoint(resume_from)  # on the CPU; load_state_dict moves it
        ts = ckpt.require_training_state(state, resume_from)
        model.load_state_dict(state["state_dict"])
        ckpt.restore_training_state(ts, optimizer, scheduler, scaler)
        history = History.from_dict(state["history"])
        bad_epochs, data_spec, start = ts["bad_epochs"], state["data"], state["epoch"] + 1
    out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
    better = (lambda a, b: a > b) if cfg.mode == "max" else (lambda a, b: a < b)

    from tqdm.auto import tqdm

    bar = tqdm(
        range(start, cfg.epochs + 1),
        desc="epochs",
        initial=start - 1,
        total=cfg.epochs,
        disable=not cfg.progress,
    )
    t_fit = time.perf_counter()
    for epoch in bar:
        t0 = time.perf_counter()
        # ---- train: one pass over the training batches --------------------------------
        model.train()
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)  # reproducible shuffle/augmentation for this epoch
        train_loss, shape = step.train_epoch(train, epoch)
        data_spec = data_spec or _data_spec(train, shape)
        # ---- validate: loss and metrics on the validation set, no gradients -----------
        model.eval()
        val_scores = _validate(forward, val, loss_fn, device, dtype, cfg)
        lr = optimizer.param_groups[0]["lr"]  # the lr this epoch trained with
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_scores[cfg.monitor])
        elif scheduler is not None:
            scheduler.step()
        seconds = time.perf_counter() - t0
        # ---- record the epoch ----------------------------------------------------------
        history.epoch.append(epoch)
        history.train_loss.append(train_loss)
        for key in ("val_loss", "val_dice", "val_iou", "val_sensitivity", "val_precision"):
            getattr(history, key).append(val_scores[key])
        history.lr.append(lr)
        history.seconds.append(seconds)
        history.train_seconds += seconds
        value = val_scores[cfg.monitor]
        improved = not math.isnan(value) and (
            history.best_metric is None or better(value, history.best_metric)
        )
        if improved:
            history.best_epoch, history.best_metric, bad_epochs = epoch, value, 0
        else:
            bad_epochs += 1
        # ---- decide whether to stop ----------------------------------------------------
        history.stopped_reason = "completed"
        if epoch < cfg.epochs and cfg.patience is not None and bad_epochs >= cfg.patience:
            history.stopped_reason = "early_stopping"
        budget = cfg.time_budget_min  # per call of fit: a resumed session gets a fresh one
        if epoch < cfg.epochs and budget is not None and time.perf_counter() - t_fit >= 60 * budget:
            history.stopped_reason = "time_budget"
        # ---- checkpoints: best.pt (weights) when improved, last.pt (everything) always --
        if out_dir is not None:
            kw = dict(epoch=epoch, config=cfg.to_dict(), history=history.to_dict(), data=data_spec)
            if improved:
                ckpt.save_checkpoint(out_dir / "best.pt", model, **kw)
            ts = ckpt.training_state(optimizer, scheduler, scaler, bad_epochs=bad_epochs)
            ckpt.save_checkpoint(out_dir / "last.pt", model, training_state=ts, **kw)
        summary = _summary(history)
        bar.set_postfix_str(summary)
        if cfg.progress:
            bar.write(f"epoch {epoch}/{cfg.epochs}  {summary}  lr {lr:.2g}  {seconds:.1f}s")
        if history.stopped_reason != "completed":
            break
    bar.close()
    if out_dir is not None and history.best_epoch is not None:
        ckpt.update_history(out_dir / "best.pt", history.to_dict())  # the whole run, not part
    if history.best_epoch is None and len(history):
        warnings.warn(
            f"{cfg.monitor} was NaN in every epoch (no validation image with infection?); "
            "no best checkpoint was chosen",
            stacklevel=2,
        )
    return history


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over the parameters that require gradients (frozen ones are left out)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    opt_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_class(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """The learning-rate schedule of ``cfg.scheduler``, stepped once per epoch (or None)."""
    if cfg.scheduler == "plateau":  # lr *= lr_factor when `monitor` stalls for lr_patience
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.mode, factor=cfg.lr_factor, patience=cfg.lr_patience
        )
    if cfg.scheduler == "cosine":  # lr follows half a cosine from lr to 0 over the epochs
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return None


def _summary(h: History) -> str:
    return f"train_loss {h.train_loss[-1]:.4f}  val_loss {h.val_loss[-1]:.4f}  val_dice {h.val_dice[-1]:.4f}"


def _data_spec(loader: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """What the model was fed, stored in checkpoints so evaluation can feed it the same."""
    return {
        "inputs": getattr(loader, "inputs", None),
        "target": getattr(loader, "target", None),
        "lung_only": bool(getattr(loader, "lung_only", False)),
        "in_channels": int(shape[1]),
        "size": int(shape[-1]),
    }


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
