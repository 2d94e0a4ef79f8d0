"""``labkit bench``: is training limited by the GPU, or by Python and PNG decoding? Measure it.

One process, one run, four sections (``run_bench`` returns them as one JSON-ready dict;
``labkit.commands.bench.format_report`` prints them as a table):

1. Data path at 256 px with report 003's augmentation, in images/s: (a) the reports' naive
   pipeline (a per-item ``Dataset`` that opens PNGs with PIL and augments each sample,
   through a ``DataLoader`` with one worker per core), (b) labkit's cached, batched
   ``BatchLoader`` on the CPU, (c) the same resident on the GPU; ratios b/a and c/a.
2. Training step throughput of ``unet`` and ``unet-resnet34`` for fp32, AMP, AMP +
   channels_last and AMP + channels_last + ``torch.compile``, each on synthetic batches
   already on the device (the model-only bound) and fed by labkit's real pipeline
   (end to end), through the very step ``labkit.train.fit`` runs.
3. Inference images/s and peak memory per model.
4. FLOPs per image (``torch.utils.flop_counter``), the achieved fraction of the device's
   peak where it is known, and an epoch-time estimate for an H100 and a T4.

The pieces live in ``bench_data.py`` (section 1), ``bench_model.py`` (sections 2-3) and
``bench_flops.py`` (FLOPs, peaks, epoch estimate); this file holds the settings, the timing
helpers and the run; ``labkit/commands/bench.py`` prints the table.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

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
        data_warmup: batches drawn before timing the data path (worker start-up excluded).
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
            data_batch=8,
            data_warmup=1,
            data_batches=4,
            data_rounds=1,
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
    from labkit.device import amp_dtype

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


# ---- the run ------------------------------------------------------------------------------


def run_bench(
    settings: BenchSettings | None = None,
    device: str | torch.device | None = None,
    data: str | None = "phantom",
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Measure everything, in this process, and return the results as a JSON-ready dict.

    Args:
        settings: sizes and counts (default: the issue's full settings).
        device: ``"cpu"``, ``"cuda"`` or None (choose automatically).
        data: dataset root or ``"phantom"`` (labkit's synthetic data, generated once).
        progress: print a line per measurement to stderr.
        command: the command line, recorded in the results.

    Returns:
        ``{"settings", "machine", "data_path", "flops", "training", "inference",
        "epoch_estimate", "notes"}``.
    """
    from labkit.device import pick_device

    settings = settings or BenchSettings()
    dev = pick_device(device)
    threads, cudnn_benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    # As in labkit.train.fit (TrainConfig.cudnn_benchmark): cuDNN picks its fastest
    # convolution algorithms during the warm-up steps, which the timings exclude.
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    try:
        return _run(settings, dev, data, progress, command)
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = cudnn_benchmark


def _run(
    settings: BenchSettings,
    dev: torch.device,
    data: str | None,
    progress: bool,
    command: str | None,
) -> dict[str, Any]:
    import sys

    from labkit import bench_data, bench_flops, bench_model
    from labkit.data import index_dataset, resolve_data

    def log(message: str) -> None:
        if progress:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "command": command,
        "settings": {**asdict(settings), "models": list(settings.models)},
        "machine": machine_facts(dev),
        "load_average": {"start": load_average()},
    }
    # "phantom" means the smoke profile's dataset (240 images per subset at 256 px): the one
    # the tests and notebooks already generate; batches cycle over it epoch after epoch.
    root = resolve_data(data, profile="smoke", progress=progress)
    results["data"] = str(root)
    records = index_dataset(root, "infection", splits=["Train"])
    t0 = time.perf_counter()
    results["data_path"] = bench_data.bench_data_path(root, records, settings, dev, log)
    results["load_average"]["after_data_path"] = load_average()
    results["flops"] = bench_flops.count_flops(settings, log)
    results["training"] = bench_model.bench_training(root, settings, dev, log)
    results["load_average"]["after_training"] = load_average()
    results["inference"] = bench_model.bench_inference(settings, dev, log)
    bench_flops.add_peak_fractions(results, dev)
    results["epoch_estimate"] = bench_flops.epoch_estimate(results, settings, dev)
    results["load_average"]["end"] = load_average()
    results["total_seconds"] = time.perf_counter() - t0
    results["notes"] = _notes(results, dev)
    return results


def _notes(results: dict[str, Any], device: torch.device) -> list[str]:
    notes = []
    load = results["load_average"]
    cores = results["machine"]["cpu_count"] or 1
    worst = max((v[0] for v in load.values() if v), default=0.0)
    if worst > 0.75 * cores:
        notes.append(
            f"the machine was busy (1-minute load average up to {worst:.1f} on {cores} cores): "
            "CPU timings are noisy; re-run when it is quiet"
        )
    if device.type == "cpu":
        notes.append(
            "GPU figures (data path (c), AMP, peak fractions) are not measured on a CPU run"
        )
    return notes
