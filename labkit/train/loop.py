"""Training: ``fit(model, train, val, config)``, with its ``TrainConfig`` and ``History``.

The loop in `fit` is written out by hand so you can read it top to bottom: one epoch is
"train on every batch, then score the validation set", and everything else (learning-rate
schedule, early stopping, checkpoints, time budget) happens between epochs.

Augmentation belongs to the data loader, not to `fit`: pass
``BatchLoader(train_data, augment=Augment(...))`` for the training set and no ``augment`` for
validation. `fit` then never has to know whether a batch is augmented, and the validation
set can never be augmented by accident.

``TrainConfig`` and ``History`` live in ``labkit.train.config``, the step inside an epoch and
validation in ``labkit.train.step``; import them all from ``labkit.train``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

import labkit.train.checkpoint as ckpt
import labkit.train.distributed as distributed
from labkit.device import amp_dtype, make_grad_scaler, pick_device, seed_everything
from labkit.device import channels_last as to_channels_last
from labkit.losses import DeepSupervisionLoss, build_loss
from labkit.progress import end_bar
from labkit.train.config import (
    History,
    TrainConfig,
    make_config,
)
from labkit.train.limits import SafetyLimit
from labkit.train.step import Forward, TrainStep, validate

__all__ = ["fit", "make_optimizer", "make_scheduler"]

# What each epoch records, in History's names; the step and validation return them.
_RECORDED = (
    "train_loss", "train_dice", "train_iou", "val_loss", "val_dice", "val_iou",
    "val_sensitivity", "val_precision", "val_dice_all", "val_dice_pooled",
)  # fmt: skip


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

    Under ``torchrun --nproc-per-node N`` the same call trains in N processes
    (DistributedDataParallel, see ``labkit.train.distributed``): each process trains on its
    shard of every epoch, validation scores are gathered so every process sees the same
    numbers, and only rank 0 prints and writes checkpoints.

    Args:
        model: any ``nn.Module`` returning logits ``(B, 1|2, H, W)``, or a list of them
            (deep supervision, final output first) in training mode.
        train: a ``labkit.data.BatchLoader`` or any iterable of ``Batch(x, y, ...)`` or
            ``(x, y)`` pairs; ``set_epoch(epoch)`` is called on it if it has one, so the
            shuffle order (and augmentation) of every epoch is reproducible. Under torchrun
            it must have ``shard(rank, world_size)`` (a ``BatchLoader`` has).
        val: the same for validation (not shuffled, not augmented).
        config: a `TrainConfig`; ``**overrides`` replace its fields
            (``fit(model, tr, va, epochs=3, lr=1e-3)``).
        resume_from: a ``last.pt`` written by an earlier `fit`: continue after its epoch
            with its weights, optimizer, schedule, history and random states.

    Returns:
        The `History` (also stored in ``out_dir/last.pt`` when ``out_dir`` is set). The
        model holds the last epoch's weights, or the best epoch's with ``restore_best=True``.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the message names epoch and step).
        ValueError: ``batch_size`` differs from the training loader's, or (under torchrun)
            the training loader cannot be sharded.
    """
    cfg = _with_loader_batch_size(make_config(config, **overrides), train)
    r = _Setup.build(model, train, val, cfg, resume_from)  # device, ranks, optimizer, resume
    model, history, limit = r.model, r.history, SafetyLimit(cfg.time_budget_min)
    best_state = _best_before(resume_from, history) if cfg.restore_best else None
    # The bar is advanced by hand after each epoch, so an early stop still counts the
    # epoch it stopped after, and the bar's label says why it stopped.
    bar = tqdm(desc="epochs", initial=r.start - 1, total=cfg.epochs, disable=not r.show)
    # Sync points (the CPU waits for the GPU, or ranks wait for each other) are marked SYNC;
    # between them the GPU works through queued steps while Python goes on.
    for epoch in range(r.start, cfg.epochs + 1):
        t0 = time.perf_counter()
        # ---- train: one pass over the training batches --------------------------------
        model.train()
        if hasattr(r.train, "set_epoch"):
            r.train.set_epoch(epoch)  # reproducible shuffle/augmentation for this epoch
        train_scores, shape = r.step.train_epoch(r.train, epoch)  # SYNC: the epoch's scores
        distributed.sync_buffers(model, r.ranks)  # SYNC (torchrun): one set of BN statistics
        r.data_spec = r.data_spec or _data_spec(r.train, shape)
        # ---- validate: loss and metrics on the validation set, no gradients -----------
        model.eval()
        val_scores = validate(  # SYNC: the scores (gathered across ranks under torchrun)
            r.val_forward, r.val, r.loss_fn, r.device, r.dtype, cfg, r.val_ranks
        )
        lr = r.optimizer.param_groups[0]["lr"]  # the lr this epoch trained with
        _step_scheduler(r.scheduler, val_scores[cfg.monitor])
        seconds = time.perf_counter() - t0
        # ---- record the epoch; keep the best weights -----------------------------------
        improved = _record(history, epoch, {**train_scores, **val_scores}, lr, seconds, cfg)
        if improved and cfg.restore_best:  # SYNC: a CPU copy, GPU memory stays for training
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        # ---- decide whether to stop: patience, then the safety limit -------------------
        history.stopped_reason = "completed"
        stalled = history.epochs_without_improvement()
        if epoch < cfg.epochs and cfg.patience is not None and stalled >= cfg.patience:
            history.stopped_reason = "early_stopping"
        # would one more epoch, as long as the slowest so far, end past a safety limit?
        if epoch < cfg.epochs and distributed.agree(limit.stop_now(seconds), r.ranks):  # SYNC
            history.stopped_reason, history.stopped_by = "time_budget", limit.reason
        # ---- checkpoints: best.pt (weights) when improved, last.pt (everything) always --
        if r.out_dir is not None:  # SYNC: the weights go to the CPU and to disk
            _save_checkpoints(r, epoch, improved, cfg)
        _show_epoch(bar, history, epoch, r.start, cfg, lr, seconds, limit, r.ranks.is_main)
        if history.stopped_reason != "completed":
            break
    end_bar(bar, _ending(history, cfg), success=history.stopped_reason != "time_budget")
    if best_state is not None:
        model.load_state_dict(best_state)  # copies back onto the model's device
    if r.out_dir is not None and history.best_epoch is not None:
        ckpt.update_history(r.out_dir / "best.pt", history.to_dict())  # the whole run, not part
    if history.best_epoch is None and len(history) and r.ranks.is_main:
        warnings.warn(
            f"{cfg.monitor} was NaN in every epoch (no validation image with infection?); "
            "no best checkpoint was chosen",
            stacklevel=2,
        )
    return history


@dataclass
class _Setup:
    """What ``fit`` trains with: built once before the first epoch (``build``)."""

    model: nn.Module
    train: Any
    val: Any
    val_ranks: distributed.Ranks
    ranks: distributed.Ranks
    device: torch.device
    dtype: torch.dtype | None
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    step: TrainStep
    val_forward: Forward
    history: History
    data_spec: dict[str, Any]
    start: int
    out_dir: Path | None
    show: bool

    @classmethod
    def build(
        cls, model: nn.Module, train: Any, val: Any, cfg: TrainConfig, resume_from: Any
    ) -> _Setup:
        seed_everything(cfg.seed)
        device = pick_device(cfg.device)
        ranks = distributed.join(device.type)  # rank 0 of 1 outside torchrun
        device = distributed.rank_device(device, ranks)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        train = distributed.shard(train, ranks, "train", required=True)
        val_shard = distributed.shard(val, ranks, "val", required=False)
        # a validation iterable that cannot be sharded is scored whole on every rank
        val_ranks = ranks if val_shard is not val else distributed.Ranks()
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
        history = History(monitor=cfg.monitor, world_size=ranks.world_size)
        data_spec: dict[str, Any] = {}
        start = 1
        if resume_from is not None:
            state = ckpt.load_checkpoint(resume_from)  # on the CPU; load_state_dict moves it
            ts = ckpt.require_training_state(state, resume_from)
            model.load_state_dict(state["state_dict"])
            ckpt.restore_training_state(ts, optimizer, scheduler, scaler)
            history = History.from_dict(state["history"])
            history.world_size = ranks.world_size
            data_spec, start = state["data"], state["epoch"] + 1
        history.epochs_planned = cfg.epochs
        net = distributed.wrap(model, device, ranks)  # DDP under torchrun, else the model
        forward = Forward(net, cfg.compile)
        # validation calls the plain model: no DDP collectives, so uneven shards cannot hang
        val_forward = forward if net is model else Forward(model, cfg.compile)
        step = TrainStep(forward, loss_fn, optimizer, scaler, device, dtype, cfg, ranks)
        out_dir = Path(cfg.out_dir) if cfg.out_dir is not None and ranks.is_main else None
        return cls(
            model, train, val_shard, val_ranks, ranks, device, dtype, loss_fn, optimizer,
            scheduler, scaler, step, val_forward, history, data_spec, start, out_dir,
            show=cfg.progress and ranks.is_main,  # only rank 0 prints
        )  # fmt: skip


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    """One step of the lr schedule after an epoch (a plateau schedule watches ``monitor``)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    elif scheduler is not None:
        scheduler.step()


def _record(
    history: History, epoch: int, scores: dict, lr: float, seconds: float, cfg: TrainConfig
) -> bool:
    """Append the epoch to ``history``; is it the best so far on ``cfg.monitor``?"""
    history.epoch.append(epoch)
    for key in _RECORDED:
        getattr(history, key).append(scores[key])
    history.lr.append(lr)
    history.seconds.append(seconds)
    value, best = scores[cfg.monitor], history.best_metric
    improved = not math.isnan(value) and (
        best is None or (value > best if cfg.mode == "max" else value < best)
    )
    if improved:
        history.best_epoch, history.best_metric = epoch, value
    return improved


def _save_checkpoints(r: _Setup, epoch: int, improved: bool, cfg: TrainConfig) -> None:
    """best.pt (weights) when the epoch improved, last.pt (everything to resume) always."""
    assert r.out_dir is not None
    h = r.history
    kw = dict(epoch=epoch, config=cfg.to_dict(), history=h.to_dict(), data=r.data_spec)
    if improved:
        ckpt.save_checkpoint(r.out_dir / "best.pt", r.model, **kw)
    ts = ckpt.training_state(r.optimizer, r.scheduler, r.scaler)
    ckpt.save_checkpoint(r.out_dir / "last.pt", r.model, training_state=ts, **kw)


def _show_epoch(
    bar: Any, h: History, epoch: int, start: int, cfg: TrainConfig, lr: float, seconds: float,
    limit: SafetyLimit, main: bool,
) -> None:  # fmt: skip
    """Advance the epoch bar; print the epoch's line (and, after the first, the run's length):
    above the bar, or on its own without bars (``progress=False``), so a run always shows
    how far it is. Only rank 0 (``main``) prints."""
    summary = _summary(h)
    bar.update(1)
    bar.set_postfix_str(summary)
    if not main:
        return
    say = bar.write if cfg.progress else (lambda line: print(line, flush=True))
    say(f"epoch {epoch}/{cfg.epochs}  {summary}  lr {lr:.2g}  {seconds:.1f}s")
    if epoch == start and epoch < cfg.epochs:  # measured here, not guessed
        say(limit.estimate(1, cfg.epochs - start + 1))


def _with_loader_batch_size(cfg: TrainConfig, train: Any) -> TrainConfig:
    """``cfg`` with the training loader's batch size, which must agree with one given."""
    loader_batch = getattr(train, "batch_size", None)
    if not isinstance(loader_batch, int):
        return cfg
    if cfg.batch_size is None:
        return replace(cfg, batch_size=loader_batch)
    if cfg.batch_size != loader_batch:
        raise ValueError(
            f"TrainConfig.batch_size is {cfg.batch_size} but the training loader's batch_size "
            f"is {loader_batch}: the loader sets the batch, so pass batch_size={loader_batch} "
            "or leave batch_size=None"
        )
    return cfg


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


def _ending(h: History, cfg: TrainConfig) -> str:
    """The epoch bar's last words: what happened."""
    if h.stopped_reason == "early_stopping":
        return (
            f"epochs: stopped early after {len(h)} of {cfg.epochs} (no better {cfg.monitor} "
            f"for {cfg.patience}; best epoch {h.best_epoch})"
        )
    if h.stopped_reason == "time_budget":
        return f"epochs: CUT after {len(h)} of {cfg.epochs} by {h.stopped_by}"
    return f"epochs: all {cfg.epochs} done"


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


def _best_before(resume_from: str | Path | None, history: History) -> dict[str, Any] | None:
    """For ``restore_best`` after a resume: the best epoch's weights if it came before the
    resume, read from the ``best.pt`` beside ``last.pt``; ``None`` when there is none yet."""
    if resume_from is None or history.best_epoch is None:
        return None
    best = Path(resume_from).with_name("best.pt")
    if not best.is_file():
        warnings.warn(
            f"restore_best: the best epoch ({history.best_epoch}) came before the resume and "
            f"there is no {best} to restore it from; the model keeps the last epoch's weights "
            "unless a later epoch does better",
            stacklevel=3,
        )
        return None
    return ckpt.load_checkpoint(best)["state_dict"]
