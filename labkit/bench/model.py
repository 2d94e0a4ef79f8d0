"""Sections 2-4 of ``labkit bench``: training steps, inference, FLOPs, peak fraction, epoch time.

Training figures go through the very step ``labkit.train.fit`` runs (``Forward`` +
``TrainStep.train_epoch``: autocast, loss, backward, GradScaler, optimizer), fed either by one
synthetic batch already on the device (the model-only bound: no data work at all) or by
labkit's real pipeline (``BatchLoader`` + report 003's augmentation: end to end). Their
ratio says how much of the GPU the data pipeline leaves idle.
"""

from __future__ import annotations

import gc
import itertools
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labkit.bench.common import BenchSettings, Timer, rate
from labkit.bench.data import endless
from labkit.data import Augment, BatchLoader, load_split
from labkit.device import amp_dtype, autocast, make_grad_scaler
from labkit.device import channels_last as to_channels_last
from labkit.losses import build_loss
from labkit.models import build_model
from labkit.runs import settings_for_model
from labkit.train.config import TrainConfig
from labkit.train.loop import make_optimizer
from labkit.train.step import Forward, TrainStep

IN_CHANNELS = {"grey": 1, "rgb": 3, "grey+lung": 2, "rgb+lung": 4}


@dataclass(frozen=True)
class Variant:
    """One precision/layout/compiler setting of the training step."""

    name: str
    amp: bool
    channels_last: bool
    compile: bool


VARIANTS = (
    Variant("fp32", False, False, False),
    Variant("amp", True, False, False),
    Variant("amp+channels_last", True, True, False),
    Variant("amp+channels_last+compile", True, True, True),
)


def model_spec(name: str) -> dict[str, Any]:
    """Inputs, channels, loss and builder arguments of ``labkit train --model name``."""
    d = settings_for_model(name)
    return {
        "inputs": d.inputs,
        "in_channels": IN_CHANNELS[d.inputs],
        "loss": d.loss,
        "kwargs": dict(d.kwargs),
    }


def build(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """The model as ``labkit train`` builds it, randomly initialised (weights do not change speed)."""

    spec = model_spec(name)
    torch.manual_seed(0)
    return build_model(name, in_channels=spec["in_channels"], **spec["kwargs"]), spec


def _label(v: Variant, dtype: torch.dtype | None, device: torch.device) -> str:
    if dtype is not None:
        return v.name.replace("amp", f"amp ({str(dtype).replace('torch.', '')})", 1)
    if v.amp:  # labkit's policy: no autocast on this device, so "amp" runs in fp32
        return v.name.replace("amp", "fp32", 1) + f" (no AMP on {device.type})"
    return v.name


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError)


def _failure(err: BaseException) -> str:
    """``n/a: <why>`` for a figure that could not be measured (compiler failure, OOM)."""
    if _is_oom(err):
        return "n/a: out of GPU memory at this batch size (try --batch-size 16)"
    return f"n/a: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"


def _cleanup(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---- 2. training step ---------------------------------------------------------------------


def _train_variant(
    name: str, v: Variant, data: Any, s: BenchSettings, device: torch.device
) -> dict[str, Any]:

    model, spec = build(name)
    model = model.to(device)
    if v.channels_last:
        model = to_channels_last(model)
    model.train()
    cfg = TrainConfig(
        loss=spec["loss"], amp=v.amp, channels_last=v.channels_last, compile=v.compile,
        device=str(device), progress=False, batch_size=s.batch_size,
    )  # fmt: skip
    dtype = amp_dtype(device, cfg.amp)
    forward = Forward(model, cfg.compile)
    opt = make_optimizer(model, cfg)
    step = TrainStep(
        forward, build_loss(cfg.loss), opt, make_grad_scaler(device, dtype), device, dtype, cfg
    )
    b, c, size = s.batch_size, spec["in_channels"], s.size

    # (i) model-only: one synthetic batch, already on the device, fed again and again.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, c, size, size, generator=g).to(device)
    y = (torch.rand(b, 1, size, size, generator=g) < 0.1).float().to(device)
    if v.channels_last:
        x = to_channels_last(x)
    with warnings.catch_warnings(record=True) as caught, Timer(device) as first:
        warnings.simplefilter("always")
        step.train_epoch([(x, y)] * s.warmup, 0)  # cuDNN autotuning / compilation happen here
    if v.compile and forward.compiled is None:  # Forward fell back to eager: not a compile figure
        reason = next((str(w.message) for w in caught), "torch.compile fell back to eager")
        raise RuntimeError(reason.splitlines()[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with Timer(device) as t:
        step.train_epoch([(x, y)] * s.steps, 1)
    model_only = rate(b * s.steps, t.seconds, s.steps, s.warmup)
    model_only["warmup_s"] = first.seconds
    if device.type == "cuda":
        model_only["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

    # (ii) end to end: labkit's real pipeline feeding the same step.
    loader = BatchLoader(
        data, b, inputs=spec["inputs"], augment=Augment.report003(), device=device,
        drop_last=True, channels_last=v.channels_last, seed=0,
    )  # fmt: skip
    batches = endless(loader)
    step.train_epoch(itertools.islice(batches, s.warmup), 2)
    with Timer(device) as t:
        step.train_epoch(itertools.islice(batches, s.steps), 3)
    end_to_end = rate(b * s.steps, t.seconds, s.steps, s.warmup)
    return {
        "model_only": model_only,
        "end_to_end": end_to_end,
        "end_to_end_over_model_only": end_to_end["images_per_s"] / model_only["images_per_s"],
    }


def bench_training(
    root: Path, s: BenchSettings, device: torch.device, log: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Section 2: images/s of training steps per model and variant, model-only and end to end."""

    data = load_split(root, "Train", size=s.size, progress=False)
    if len(data) < s.batch_size:
        raise ValueError(
            f"the Train split of {root} has {len(data)} images, fewer than batch size {s.batch_size}"
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for name in s.models:
        rows = []
        for v in VARIANTS:
            dtype = amp_dtype(device, v.amp)
            row: dict[str, Any] = {
                "variant": v.name,
                "label": _label(v, dtype, device),
                "amp_dtype": None if dtype is None else str(dtype).replace("torch.", ""),
                "channels_last": v.channels_last,
                "compile": v.compile,
            }
            if v.amp and dtype is None and not v.channels_last:
                row["status"] = f"same as fp32 (no AMP on {device.type})"
            elif v.compile and not s.compile:
                row["status"] = "n/a: skipped (--quick or --no-compile)"
            else:
                log(f"training {name} {row['label']}: {s.size} px, batch {s.batch_size}")
                try:
                    row.update(_train_variant(name, v, data, s, device))
                except Exception as err:  # a compiler failure or OOM is reported, not raised
                    if not (v.compile or _is_oom(err)):
                        raise
                    row["status"] = _failure(err)
                finally:
                    if v.compile:
                        torch._dynamo.reset()
                    _cleanup(device)
            rows.append(row)
        out[name] = rows
    return out


# ---- 3. inference ---------------------------------------------------------------------------


def _rss_bytes() -> int | None:
    try:
        import os

        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakRSS:
    """Peak rise of this process's resident memory inside a ``with`` block (CPU, Linux).

    ``tracemalloc`` cannot see torch's C++ allocations, so a thread samples
    ``/proc/self/statm`` every millisecond; freed memory is handed back to the OS first
    (``malloc_trim``) so the baseline is not inflated. Approximate: it may miss a peak
    shorter than the sampling interval.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval, self.rise = interval, None

    def __enter__(self) -> PeakRSS:
        gc.collect()
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.base = _rss_bytes()
        self.peak, self._stop = self.base, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        if self.base is not None:
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() or 0)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.base is not None:
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes() or 0)
            self.rise = self.peak - self.base


def _infer_variant(name: str, v: Variant, s: BenchSettings, device: torch.device) -> dict[str, Any]:

    model, spec = build(name)
    model = model.to(device).eval()
    x = torch.rand(
        s.batch_size,
        spec["in_channels"],
        s.size,
        s.size,
        generator=torch.Generator().manual_seed(0),
    ).to(device)
    if v.channels_last:
        model, x = to_channels_last(model), to_channels_last(x)
    dtype = amp_dtype(device, v.amp)
    with torch.inference_mode(), autocast(device, dtype):
        for _ in range(s.warmup):
            model(x)
        if device.type == "cuda":
            allocated_before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            model(x)
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
            memory = {"peak_memory_mb": peak / 2**20, "activations_mb": (peak - allocated_before) / 2**20,
                      "memory_measure": "cuda max_memory_allocated (weights + one batch)"}  # fmt: skip
        else:
            with PeakRSS() as m:
                model(x)
            memory = {"peak_memory_mb": None if m.rise is None else m.rise / 2**20,
                      "memory_measure": "cpu: peak RSS rise during one batch, sampled every 1 ms (approximate)"}  # fmt: skip
        with Timer(device) as t:
            for _ in range(s.infer_steps):
                model(x)
    return {**rate(s.batch_size * s.infer_steps, t.seconds, s.infer_steps, s.warmup), **memory}


def bench_inference(
    s: BenchSettings, device: torch.device, log: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Section 3: inference images/s and peak memory, fp32 and AMP + channels_last."""

    out: dict[str, list[dict[str, Any]]] = {}
    for name in s.models:
        rows = []
        for v in (VARIANTS[0], VARIANTS[2]):
            label = _label(v, amp_dtype(device, v.amp), device)
            log(f"inference {name} {label}: {s.size} px, batch {s.batch_size}")
            row = {"variant": v.name, "label": label}
            try:
                row.update(_infer_variant(name, v, s, device))
            except torch.cuda.OutOfMemoryError as err:
                row["status"] = _failure(err)
            _cleanup(device)
            rows.append(row)
        out[name] = rows
    return out
