"""Checkpoints: atomic save, validated load, ``load_model(path)`` and resume state.

A labkit checkpoint is one ``torch.save`` file holding a plain dict (only tensors, numbers,
strings, lists, tuples and dicts, so it loads with ``torch.load(weights_only=True)``: no
arbitrary code runs when you open a file someone sent you)::

    format          "labkit-checkpoint"        marker checked on load
    format_version  1
    labkit_version  "0.1.0"                    labkit that wrote it
    torch_version   "2.14.1"
    model           {"name": "unet", "kwargs": {...}}  from model.labkit_spec, or None
    state_dict      the model's weights
    config          TrainConfig.to_dict() (or {})
    epoch           epochs completed (1-based count)
    history         History.to_dict() so far (or {}); `fit` rewrites best.pt's at the end
                    so it tells how the whole run went
    data            {"inputs", "target", "size", "in_channels"} the model was trained on
    training_state  None for a weights-only file (best.pt), else a dict with
                    optimizer / scheduler / scaler state dicts, early-stopping counters and
                    rng (python / numpy / torch / cuda generator states) for exact resume.

Files are written atomically: to a temporary file in the same folder, flushed to disk, then
``os.replace``-d over the target, so a crash mid-write never leaves half a checkpoint.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.device import pick_device
from labkit.models import build_from_spec

FORMAT = "labkit-checkpoint"
FORMAT_VERSION = 1

_EXPECTED = (
    "a labkit checkpoint, as `labkit train` writes (last.pt, best.pt) or lk.train.save_checkpoint"
)


class CheckpointError(ValueError):
    """A file that is not a readable labkit checkpoint (truncated, foreign, too new)."""


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The ``{"name", "kwargs"}`` that ``labkit.models.build_model`` attached, or None."""
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    spec = getattr(model, "labkit_spec", None)
    if spec is None:
        return None
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)):
        raise ValueError(f"model.labkit_spec must be a dict with a 'name', got {spec!r}")
    kwargs = dict(spec.get("kwargs") or {})
    _check_plain(kwargs, "model.labkit_spec['kwargs']")
    return {"name": spec["name"], "kwargs": kwargs}


def _check_plain(obj: Any, where: str) -> None:
    """Reject values that ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    elif not (obj is None or isinstance(obj, (bool, int, float, str))):
        raise ValueError(
            f"{where} = {obj!r} ({type(obj).__name__}) cannot be stored in a checkpoint; "
            "expected numbers, strings, None, lists or dicts"
        )


def rng_state() -> dict[str, Any]:
    """Every random generator training touches (python, numpy, torch CPU, CUDA)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        # numpy arrays are not weights_only-loadable: store the key array as a tensor.
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators saved by `rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype("uint32"), *rest))
    torch.set_rng_state(state["torch"].cpu())  # generator states must be CPU byte tensors
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows (same filesystem)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    epoch: int = 0,
    config: dict[str, Any] | None = None,
    history: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write a labkit checkpoint atomically.

    Args:
        path: file to write (folders are created).
        model: the model; its ``labkit_spec`` (set by ``build_model``) makes the file
            loadable with `load_model`. Weights come from the uncompiled module.
        epoch: epochs completed.
        config: training config as a dict (``TrainConfig.to_dict()``).
        history: ``History.to_dict()`` so far.
        data: what the model was fed: ``{"inputs", "target", "size", "in_channels"}``.
        training_state: optimizer / scheduler / scaler / rng state for resume, or None.

    Returns:
        The path written.
    """
    from labkit import __version__

    base = getattr(model, "_orig_mod", model)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labkit_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "model": model_spec(base),
        "state_dict": base.state_dict(),
        "config": dict(config or {}),
        "epoch": int(epoch),
        "history": dict(history or {}),
        "data": dict(data or {}),
        "training_state": training_state,
    }
    _check_plain(payload["config"], "config")
    return atomic_save(payload, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a labkit checkpoint (``weights_only=True``: no code runs).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: truncated, foreign (not written by labkit) or too new a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist (expected {_EXPECTED})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if len(reason) < 8:  # torch's bare codes ("101" for a text file) say nothing to a reader
            reason = f"{type(err).__name__} {reason!r} while reading it"
        if "weights only" in str(err).lower() or "weights_only" in str(err).lower():
            reason = "it holds Python objects that a safe (weights_only) load refuses"
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: {reason}. Expected {_EXPECTED}; "
            "the file may be truncated (an interrupted copy) or not a PyTorch file at all."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = "a plain state_dict" if _looks_like_state_dict(ckpt) else type(ckpt).__name__
        raise CheckpointError(
            f"{str(path)!r} is a PyTorch file but not a labkit checkpoint (found {what}, no "
            f"'format': {FORMAT!r} marker). Expected {_EXPECTED}. For a bare state_dict, "
            "build the model yourself and call model.load_state_dict(torch.load(path))."
        )
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has labkit checkpoint format version {version!r}; this labkit reads "
            f"versions up to {FORMAT_VERSION}. Upgrade labkit to read it."
        )
    return ckpt


def update_history(path: str | Path, history: dict[str, Any]) -> Path:
    """Replace the history stored in a checkpoint (e.g. best.pt learns how training ended)."""
    ckpt = load_checkpoint(path)
    ckpt["history"] = dict(history)
    return atomic_save(ckpt, path)


def _looks_like_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def load_model(
    path: str | Path, device: str | torch.device | None = None, eval_mode: bool = True
) -> nn.Module:
    """Rebuild a model from a checkpoint without knowing its architecture.

    The architecture comes from the checkpoint's ``model`` spec via
    ``labkit.models.build_from_spec``, which drops pretrained-weight sources
    (``encoder_weights``, ``weights_path``): nothing is downloaded, the saved weights
    replace them. The checkpoint dict is attached as ``model.labkit_checkpoint`` minus the
    weights (epoch, config, history, data), for reference.

    Args:
        path: a file written by `save_checkpoint` / ``labkit train``.
        device: where to put the model (default: ``labkit.device.pick_device()``).
        eval_mode: return the model in ``eval()`` mode (for prediction).

    Returns:
        The model with its trained weights.
    """
    ckpt = load_checkpoint(path)
    spec = ckpt.get("model")
    if not spec:
        raise CheckpointError(
            f"{str(path)!r} stores weights but no model spec (the model was not made by "
            "labkit.models.build_model), so labkit cannot rebuild it: build the same model "
            "yourself and call model.load_state_dict(load_checkpoint(path)['state_dict'])"
        )
    try:
        model = build_from_spec(spec)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"cannot rebuild the model stored in {str(path)!r}: {err}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"weights in {str(path)!r} do not fit model {spec['name']!r} built with "
            f"{spec.get('kwargs')}: {str(err).splitlines()[0]}"
        ) from None
    model.labkit_checkpoint = {k: ckpt[k] for k in ("epoch", "config", "history", "data")}
    model.labkit_checkpoint["path"] = str(path)
    model = model.to(pick_device(device))
    return model.eval() if eval_mode else model


def training_state(optimizer: Any, scheduler: Any, scaler: Any, **counters: int) -> dict[str, Any]:
    """What `fit` needs beyond the weights to continue exactly where it stopped."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_state(),
        **{k: int(v) for k, v in counters.items()},
    }


def require_training_state(ckpt: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's training state, or a clear error for a weights-only file."""
    state = ckpt.get("training_state")
    if not state:
        raise CheckpointError(
            f"{str(path)!r} holds weights only (like best.pt), not the optimizer and random "
            "states needed to resume: resume from last.pt, or start a new fit from "
            "load_model(path)"
        )
    return state


def restore_training_state(
    state: dict[str, Any], optimizer: Any, scheduler: Any, scaler: Any
) -> None:
    """Load optimizer / scheduler / scaler state and the random generators (call it last)."""
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") and scaler.state_dict():
        scaler.load_state_dict(state["scaler"])  # only when fp16 loss scaling is on both sides
    set_rng_state(state["rng"])
