"""Training settings: ``TrainConfig`` (validated on creation) and the ``History`` `fit` returns.

`labkit.train.fit` takes a `TrainConfig` (or its fields as keyword arguments) and returns a
`History`; both are plain dataclasses whose ``to_dict()`` goes into checkpoints and JSON.
Import them from ``labkit.train`` (``lk.TrainConfig``), where they are re-exported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from torch import nn

from labkit.losses import LOSSES

# metric -> which way is better. val_dice / val_iou skip images with an empty mask (the
# labkit policy), so they cannot see false positives on healthy images; val_dice_all
# (empty mask: 1 if nothing predicted, else 0) and val_dice_pooled (one Dice of all pixels)
# can. See TrainConfig.monitor.
MONITORS = {
    "val_dice": "max",
    "val_iou": "max",
    "val_loss": "min",
    "val_dice_all": "max",
    "val_dice_pooled": "max",
}
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = (None, "plateau", "cosine")
STOP_REASONS = ("completed", "early_stopping", "time_budget")


@dataclass
class TrainConfig:
    """Everything `fit` needs to know besides the model and the data.

    Args:
        epochs: passes over the training set.
        batch_size: images per batch *per process* (under torchrun the effective batch is
            ``batch_size * world_size``). The training loader sets it: None (default) takes
            the loader's ``batch_size``; a number must equal it (`fit` raises otherwise), so
            the config stored in checkpoints says what really trained.
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
        monitor: the validation score that chooses the best epoch (checkpoint,
            ``restore_best``, early stopping, the plateau schedule): ``"val_dice"``
            (default), ``"val_iou"``, ``"val_loss"`` (lower is better),
            ``"val_dice_all"`` or ``"val_dice_pooled"``. ``val_dice`` / ``val_iou`` average
            over the images *with* infection only, so they cannot see a model that marks
            healthy images as infected: use them when training on COVID-19 images only.
            When training on all classes use ``"val_dice_all"`` (per-image Dice over every
            image; a healthy image scores 1 if nothing is predicted, else 0) or
            ``"val_dice_pooled"`` (one Dice over all pixels: false positives anywhere
            count, but large lesions weigh more than small ones).
        amp: mixed precision where it helps: bf16 on recent GPUs, fp16 + GradScaler on
            older ones, none on CPU/MPS (see ``labkit.device``).
        channels_last: NHWC memory layout for model and inputs (faster convs on GPUs).
        compile: ``torch.compile`` the model; falls back to eager with a warning if it fails.
        cudnn_benchmark: on CUDA, let cuDNN time its convolution algorithms on the first
            batches and keep the fastest (batches here all have one size, so this pays);
            False fixes the algorithm choice; bit-for-bit repeatable GPU runs also need
            deterministic kernels (``seed_everything(seed, deterministic=True)``).
        time_budget_min: stop cleanly after the epoch during which this many minutes have
            passed since `fit` was called (a Colab session, CI), or None. Resume from
            ``last.pt`` in the next session.
        seed: seeds python, numpy and torch at the start of `fit`.
        threshold: probability threshold for the validation metrics.
        device: ``"cuda"``, ``"cpu"``, ... or None to choose automatically.
        out_dir: folder for ``best.pt`` (best ``monitor`` so far, weights only) and
            ``last.pt`` (every epoch, with optimizer and random states: resume from it).
            None saves nothing.
        restore_best: at the end, put the weights of the best ``monitor`` epoch back into
            the model (a CPU copy of them is kept in memory whenever ``monitor`` improves), so
            that what you evaluate next is the model you selected on validation, not the
            last epoch's. Off by default: the model then holds the last epoch's weights.
        progress: show tqdm progress bars (epochs; batches in a bar that disappears); off,
            each epoch is still one plain line (epoch k/N, losses, Val Dice, seconds).
        log_every: steps between loss read-outs; each read-out updates the batch bar and
            checks for NaN/inf. Reading a GPU loss waits for the GPU, so not every step.
    """

    epochs: int = 10
    batch_size: int | None = None
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
    restore_best: bool = False
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
        need(
            self.batch_size is None or (is_int(self.batch_size) and self.batch_size >= 1),
            "batch_size",
            "None or an int >= 1",
        )
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
                     "restore_best", "progress"):  # fmt: skip
            need(isinstance(getattr(self, flag), bool), flag, "True or False")
        if isinstance(self.loss, str):
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
    ``"completed"``, ``"early_stopping"``, ``"time_budget"`` (a safety limit cut the run:
    ``stopped_by`` says which, ``epochs_planned`` how many epochs it should have had). ``train_dice`` / ``train_iou``
    score the training batches as they were predicted during the epoch (training mode,
    augmented, the weights still changing: no extra pass), so they sit a little below what
    the end-of-epoch model would score; compare them with ``val_dice`` / ``val_iou`` to see
    over-fitting. ``val_dice_all`` / ``val_dice_pooled``: see ``TrainConfig.monitor``.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_dice: list[float] = field(default_factory=list)
    train_iou: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_dice: list[float] = field(default_factory=list)
    val_iou: list[float] = field(default_factory=list)
    val_sensitivity: list[float] = field(default_factory=list)
    val_precision: list[float] = field(default_factory=list)
    val_dice_all: list[float] = field(default_factory=list)
    val_dice_pooled: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    monitor: str = "val_dice"
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_reason: str = "completed"
    stopped_by: str = ""  # with "time_budget": which limit, in words (labkit.train.limits)
    epochs_planned: int | None = None  # the epochs asked for (a cut run trained fewer)
    world_size: int = 1  # processes that trained (torchrun); 1 without it

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def train_seconds(self) -> float:
        """Wall time of all epochs (across resumes): the sum of ``seconds``."""
        return float(sum(self.seconds))

    def epochs_without_improvement(self) -> int:
        """Epochs since ``monitor`` last improved (all of them if it never did)."""
        if not self.epoch:
            return 0
        return self.epoch[-1] - (self.best_epoch or 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN stays NaN; ``json.dumps`` writes it as ``NaN``), with
        ``train_seconds`` for readers of metrics.json and checkpoints."""
        out = {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v)
            for f in fields(self)
        }
        out["train_seconds"] = self.train_seconds
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Inverse of `to_dict` (unknown and derived keys are ignored; a history written
        before a field existed gets NaN for it in every epoch, so all lists stay aligned)."""
        names = {f.name for f in fields(cls)}
        h = cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})
        for f in fields(cls):
            values = getattr(h, f.name)
            if isinstance(values, list) and f.name != "epoch" and len(values) < len(h.epoch):
                values[:0] = [math.nan] * (len(h.epoch) - len(values))
        return h


def make_config(config: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """``config`` (or the defaults) with ``overrides`` applied and validated."""
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown}")
    return replace(config, **overrides)
