"""The bench's settings, timing helpers, rates and machine facts (shared by every section)."""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from labkit.device import amp_dtype

MODELS = ("unet", "unet-resnet34")
SIZE_MULTIPLE = 32  # unet-resnet34's encoder halves the image 5 times


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure. The defaults are the issue's settings; ``quick_settings()``
    shrinks them.

    Args:
        quick: set by ``quick_settings()``; only recorded.
        data_size: image side of the data-path section (256 = the real data).
        data_batch: batch size of the data-path section.
        data_warmup: batches drawn before timing the data path (worker start-up excluded;
            the naive pipeline draws at least one per worker).
        data_batches: timed batches of the data path, per round.
        data_rounds: rounds of (a) then (b), interleaved so that a change in the machine's
            load hits both; the figures are the medians over the rounds.
        size: image side of the model sections (a multiple of 32).
        batch_size: batch size of the model sections.
        warmup: untimed steps before each timed figure (cuDNN autotuning, compilation).
        steps: timed training steps per figure.
        infer_steps: timed inference batches per figure.
        compile: measure the ``torch.compile`` variant (minutes of compilation on a CPU).
        models: model names (``labkit.models.build_model``).
        workers: ``DataLoader`` workers of the naive pipeline (None: ``os.cpu_count()``).
        threads: torch's intra-op CPU threads in this process (None: torch's default, one
            per core). On a machine shared with other jobs, 1 avoids threads waiting on
            each other.
    """

    quick: bool = False
    data_size: int = 256
    data_batch: int = 32
    data_warmup: int = 2
    data_batches: int = 64
    data_rounds: int = 3
    size: int = 256
    batch_size: int = 32
    warmup: int = 2
    steps: int = 10
    infer_steps: int = 10
    compile: bool = True
    models: tuple[str, ...] = MODELS
    workers: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("quick", "compile", "models", "workers", "threads"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"bench setting {f.name}: expected an int >= 1, got {value!r}")
        if self.size % SIZE_MULTIPLE:
            raise ValueError(
                f"bench setting size: expected a multiple of {SIZE_MULTIPLE} "
                f"(unet-resnet34 halves the image 5 times), got {self.size}"
            )
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise ValueError(f"bench setting workers: expected an int >= 0, got {self.workers!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"bench setting threads: expected an int >= 1, got {self.threads!r}")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ValueError(
                f"bench setting models: expected some of {', '.join(MODELS)}, got {self.models!r}"
            )

    @classmethod
    def quick_settings(cls) -> BenchSettings:
        """Small enough that the whole run takes under a minute on 2 CPU cores (1 torch thread)."""
        return cls(
            quick=True,
            # The data path keeps the full setting's 256 px and batch 32 (what README quotes),
            # in 5 interleaved rounds of 16 batches: one round of 4 batches of 8 gave b/a
            # anywhere from 1.4x to 2.0x for the same code (RESULTS.md, data path).
            data_batches=16,
            data_rounds=5,
            size=64,
            batch_size=4,
            warmup=1,
            steps=2,
            infer_steps=2,
            compile=False,
            threads=1,  # two OpenMP threads on a busy 2-core machine wait on each other: 4x slower
        )

    def override(self, **changes: Any) -> BenchSettings:
        """A copy with the non-None ``changes`` applied (and validated)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# ---- timing -----------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for the device to finish queued work, so wall-clock timings are honest.

    CUDA (and MPS) kernels run asynchronously: without this, a timer would stop while the
    GPU is still working on the last steps.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Timer:
    """``with Timer(device) as t: ...`` then ``t.seconds``; synchronises the device on both ends."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> Timer:
        sync(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self._t0


def count_syncs(device: torch.device, fn: Callable[[], Any]) -> int | None:
    """How many synchronising CUDA calls ``fn()`` makes (None off CUDA).

    Each one (a blocking host-to-device copy, ``.item()``, ``nonzero``) makes the CPU wait
    until the GPU has drained its queue, so the GPU then idles while the CPU prepares the
    next batch. torch's sync debug mode warns once per such call; the warnings are counted.
    """
    if device.type != "cuda":
        return None
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def rate(images: int, seconds: float, iterations: int, warmup: int) -> dict[str, Any]:
    """A throughput record: images/s over ``iterations`` timed iterations after ``warmup``."""
    return {
        "images_per_s": images / seconds if seconds > 0 else float("inf"),
        "images": images,
        "seconds": seconds,
        "iterations": iterations,
        "warmup": warmup,
    }


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS does not report them)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


# ---- machine ----------------------------------------------------------------------------


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on: versions, CPU, threads, GPU, AMP dtype, date."""
    from labkit import __version__

    facts: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "labkit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "segmentation-models-pytorch": _version("segmentation-models-pytorch"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts["gpu"] = props.name
        facts["gpu_memory_gb"] = round(props.total_memory / 1024**3, 1)
        facts["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        facts["cuda"] = torch.version.cuda
    dtype = amp_dtype(device)
    facts["amp_dtype"] = None if dtype is None else str(dtype).replace("torch.", "")
    return facts
