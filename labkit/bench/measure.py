"""``labkit bench``'s run: every section in one process, one JSON-ready dict."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import torch

import labkit.bench.data as bench_data
import labkit.bench.flops as bench_flops
import labkit.bench.model as bench_model
from labkit.bench.common import BenchSettings, load_average, machine_facts
from labkit.data import index_dataset, resolve_data
from labkit.device import pick_device
from labkit.runs import get_profile

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
    root = resolve_data(data, get_profile("smoke").phantom_n, progress=progress)
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
