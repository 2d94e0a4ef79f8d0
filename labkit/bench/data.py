"""Section 1 of ``labkit bench``: the data path, naive per-item pipeline vs labkit's batches.

The naive pipeline is the one the student reports wrote: a ``Dataset`` whose
``__getitem__`` opens the image and both masks with PIL and augments that one sample
(albumentations-style: flip, shift-scale-rotate, brightness/contrast, noise; here with
``torchvision.transforms.v2``, which moves image and masks together), batched by a
``DataLoader`` with one worker process per core. Every epoch decodes every PNG again.

labkit's pipeline decodes each split once (``load_split``, cached on disk as uint8), keeps
it in memory, and builds each batch by indexing plus one batched augmentation
(``BatchLoader(augment=Augment.report003())``), on the CPU or resident on the GPU.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.bench.common import BenchSettings, Timer, count_syncs, rate
from labkit.data import Augment, BatchLoader, load_split
from labkit.device import keep_freed_memory


def naive_transform():
    """Report 003's augmentation drawn per sample, the way the reports' pipelines do it.

    Horizontal flip (p 0.5); shift +-10 %, scale 0.9-1.1, rotate +-15 degrees (p 0.5);
    brightness/contrast +-20 % (p 0.5); Gaussian noise sigma 0.02 (p 0.5). ``v2`` applies
    the same geometry to ``tv_tensors.Mask`` inputs (nearest) and leaves their values alone
    in the colour and noise steps. (albumentations reflects at the borders; ``v2`` fills
    with 0: the cost is the same.)
    """
    import torchvision.transforms.v2 as v2
    from torchvision import tv_tensors

    return v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomApply(
                [v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1))], p=0.5
            ),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2)], p=0.5),
            v2.RandomApply([v2.GaussianNoise(sigma=0.02)], p=0.5),
        ]
    )


class NaiveSegDataset(torch.utils.data.Dataset):
    """One sample per item: open 3 PNGs with PIL, resize if needed, augment, return floats.

    Args:
        records: ``labkit.data.Record``s (image, lung mask, infection mask paths).
        size: image side; PNGs of another size are resized (bilinear image, nearest masks).

    Items are ``(x (1, H, W) float in [0, 1], y (1, H, W) float {0, 1}, lung (1, H, W))``.
    """

    def __init__(self, records: list, size: int) -> None:
        if not records:
            raise ValueError("records: expected at least one image record, got none")
        self.records, self.size = list(records), size
        self.transform = naive_transform()

    def __len__(self) -> int:
        return len(self.records)

    def _read(self, path: Path, mask: bool) -> torch.Tensor:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("L")
            if im.size != (self.size, self.size):
                resample = Image.Resampling.NEAREST if mask else Image.Resampling.BILINEAR
                im = im.resize((self.size, self.size), resample)
            arr = np.asarray(im)
        if mask:  # masks are stored as 0/255
            arr = (arr >= 128).astype(np.uint8)
        return torch.from_numpy(arr.copy())[None]  # (1, H, W) uint8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        r = self.records[i]
        image = tv_tensors.Image(self._read(r.image, mask=False))
        lung = tv_tensors.Mask(self._read(r.lung_mask, mask=True))
        target = tv_tensors.Mask(self._read(r.infection_mask, mask=True))
        x, lung, target = self.transform(image, lung, target)  # same geometry for all three
        plain = torch.Tensor
        return (
            x.as_subclass(plain),
            target.as_subclass(plain).float(),
            lung.as_subclass(plain).float(),
        )


def median_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record with the median images/s (the lower middle one for an even count)."""
    ranked = sorted(records, key=lambda rec: rec["images_per_s"])
    return ranked[(len(ranked) - 1) // 2]


def endless(loader: Any) -> Iterator[Any]:
    """Batches from ``loader`` epoch after epoch (each pass of a BatchLoader is a new epoch)."""
    while True:
        yield from loader


def bench_naive(records: list, s: BenchSettings, device: torch.device) -> dict[str, Any]:
    """(a) the reports' pipeline: images/s out of a multi-worker DataLoader.

    On CUDA it does what a training script would: pinned batches copied to the GPU
    asynchronously, so (a) and (c) both end with batches on the GPU.
    """
    workers = (os.cpu_count() or 1) if s.workers is None else s.workers
    ds = NaiveSegDataset(records, s.data_size)
    total = (max(s.data_warmup, workers) + s.data_batches) * s.data_batch
    sampler = torch.utils.data.RandomSampler(
        ds, num_samples=total, generator=torch.Generator().manual_seed(0)
    )  # cycles through shuffled epochs when total > len(ds)
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        ds, batch_size=s.data_batch, sampler=sampler, num_workers=workers, drop_last=True,
        pin_memory=cuda,
    )  # fmt: skip
    t0 = time.perf_counter()
    batches = iter(loader)
    # Untimed: starting the workers, and at least one batch per worker, because every
    # worker starts on a batch at once: with fewer, batches finished during the warm-up
    # would be counted as if delivered in the timed window (with 1 warm-up batch, 2
    # workers and 4 timed batches, one of the four came free).
    for _ in range(max(s.data_warmup, workers)):
        next(batches)
    startup = time.perf_counter() - t0
    images = 0
    with Timer(device) as t:
        for _ in range(s.data_batches):
            x, y, lung = next(batches)
            if cuda:
                x, y, lung = (v.to(device, non_blocking=True) for v in (x, y, lung))
            images += x.shape[0]
    del batches  # shuts the workers down
    warmup = max(s.data_warmup, workers)
    return {**rate(images, t.seconds, s.data_batches, warmup), "workers": workers,
            "batches_on": device.type, "startup_and_warmup_s": startup}  # fmt: skip


def bench_labkit(
    data: Any, s: BenchSettings, device: torch.device, resident: bool = True
) -> dict[str, Any]:
    """(b)/(c)/(d) labkit's BatchLoader with report 003's augmentation, batches on ``device``.

    ``resident=False`` on CUDA keeps the split on the CPU and copies each gathered batch
    from pinned memory asynchronously (for splits larger than the GPU's memory).
    """

    t0 = time.perf_counter()  # resident: the uint8 split is copied to the device once, here
    loader = BatchLoader(
        data, s.data_batch, augment=Augment.report003(), device=device, drop_last=True, seed=0,
        resident=resident,
    )  # fmt: skip
    to_device = time.perf_counter() - t0
    batches = endless(loader)
    for _ in range(s.data_warmup):
        next(batches)
    images = 0
    with Timer(device) as t:
        for _ in range(s.data_batches):
            images += next(batches).x.shape[0]
    out = rate(images, t.seconds, s.data_batches, s.data_warmup)
    out["copy_to_device_s"] = to_device
    out["syncs_per_batch"] = count_syncs(device, lambda: next(batches))
    return out


def bench_data_path(
    root: Path, records: list, s: BenchSettings, device: torch.device, log: Callable[[str], None]
) -> dict[str, Any]:
    """Section 1: (a) naive, (b) labkit on the CPU, (c) resident on the GPU, (d) pinned copies."""

    if len(records) < s.data_batch:
        raise ValueError(
            f"the Train split of {root} has {len(records)} images, fewer than the data-path "
            f"batch size {s.data_batch}"
        )
    out: dict[str, Any] = {
        "size": s.data_size,
        "batch": s.data_batch,
        "batches": s.data_batches,
        "warmup": s.data_warmup,
        "split_images": len(records),
    }
    log("data path: labkit decodes the split once (load_split, cache off)")
    t0 = time.perf_counter()
    data = load_split(root, "Train", size=s.data_size, progress=False, cache=False)
    seconds = time.perf_counter() - t0
    out["decode"] = {"images": len(data), "seconds": seconds, "images_per_s": len(data) / seconds}
    # BatchLoader sets this on its first CPU batch; set here, before round 1, so that (a) and
    # its forked workers run under the same allocator setting in every round as (b) does.
    out["keep_freed_memory"] = keep_freed_memory()
    # (a) and (b) take turns, so that other jobs starting or stopping on a shared machine
    # slow both alike; each round's b/a compares two runs seconds apart.
    rounds = []
    for r in range(1, s.data_rounds + 1):
        # Forked DataLoader workers never touch CUDA (PIL and CPU tensors only), so forking
        # after the parent has initialised CUDA is safe.
        log(f"data path round {r}/{s.data_rounds}: (a) naive per-item pipeline, "
            f"{s.data_size} px, batch {s.data_batch}")  # fmt: skip
        naive = bench_naive(records, s, device)
        log(f"data path round {r}/{s.data_rounds}: (b) labkit BatchLoader on cpu")
        labkit = bench_labkit(data, s, torch.device("cpu"))
        ratio = labkit["images_per_s"] / naive["images_per_s"]
        rounds.append({"naive": naive, "labkit_cpu": labkit, "ratio_b_over_a": ratio})
    out["rounds"] = [
        {k: v["images_per_s"] if isinstance(v, dict) else v for k, v in rd.items()} for rd in rounds
    ]
    out["naive"] = median_record([rd["naive"] for rd in rounds])
    out["labkit_cpu"] = median_record([rd["labkit_cpu"] for rd in rounds])
    if device.type == "cuda":
        log(f"data path (c): labkit BatchLoader resident on {device}")
        out["labkit_gpu"] = bench_labkit(data, s, device)
        log(f"data path (d): labkit BatchLoader, split in CPU memory, pinned copies to {device}")
        out["labkit_gpu_pinned"] = bench_labkit(data, s, device, resident=False)
    else:
        out["labkit_gpu"] = {"status": "n/a: no CUDA device in this run"}
        out["labkit_gpu_pinned"] = {"status": "n/a: no CUDA device in this run"}
    naive = out["naive"]["images_per_s"]
    ratios = [rd["ratio_b_over_a"] for rd in rounds]
    out["ratio_b_over_a"] = statistics.median(ratios)
    out["ratio_b_over_a_spread"] = [min(ratios), max(ratios)]
    for key, which in (("ratio_c_over_a", "labkit_gpu"), ("ratio_d_over_a", "labkit_gpu_pinned")):
        gpu = out[which].get("images_per_s")
        out[key] = None if gpu is None else gpu / naive
    out["target_b_over_a"] = 3.0
    return out
