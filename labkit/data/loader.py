"""Batches for training: ``BatchLoader`` (fast, whole split on the device) and ``SegDataset``.

``BatchLoader`` keeps the decoded uint8 tensors (4x smaller than float) in memory, on the GPU
when there is one, and builds each batch by indexing: no per-item Python, no decoding in the
training loop. Augmentation runs on the whole batch on the device, then normalisation.
``SegDataset`` is the familiar ``torch.utils.data.Dataset`` for students who want a
``DataLoader``; both build their inputs with the same function, ``make_inputs``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import NamedTuple

import torch

from labkit.data.augment import Augment
from labkit.data.cache import SegData, resident_on
from labkit.data.preprocess import imagenet_normalize
from labkit.device import keep_freed_memory

INPUT_MODES = ("grey", "rgb", "grey+lung", "rgb+lung")
TARGETS = ("infection", "lung")


class Batch(NamedTuple):
    """One batch. Shapes: ``x (B, C, H, W)``, ``y (B, 1, H, W)``, ``lung (B, 1, H, W)``, ``index (B,)``.

    ``x`` and the float masks are on the loader's device; ``index`` (CPU, long) gives each
    sample's position in the ``SegData`` (``data.names[index[i]]`` is its file name).
    """

    x: torch.Tensor
    y: torch.Tensor
    lung: torch.Tensor
    index: torch.Tensor


def _validate(data: SegData, target: str, inputs: str) -> None:
    if not isinstance(data, SegData):
        raise ValueError(f"data: expected a SegData (from load_split), got {type(data).__name__}")
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {', '.join(TARGETS)}, got {target!r}")
    if inputs not in INPUT_MODES:
        raise ValueError(f"inputs: expected one of {', '.join(INPUT_MODES)}, got {inputs!r}")
    if target == "infection" and data.infection is None:
        raise ValueError(
            f"target='infection' but this SegData is the {data.subset!r} subset, which has no "
            "infection masks; use target='lung' or load subset='infection'"
        )


def make_inputs(
    images: torch.Tensor,
    lung: torch.Tensor,
    target: torch.Tensor | None,
    inputs: str = "grey",
    lung_only: bool = False,
    augment: Augment | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 batch -> model input ``x``, float target ``y`` and float ``lung``.

    ``target=None`` means the target is the lung mask. Order: augment (same geometry for image
    and masks), then lung-only masking, then normalisation, then the optional lung channel.

    Shape:
        images, lung, target ``(B, 1, H, W)`` uint8 -> x ``(B, 1|2|3|4, H, W)``, y and lung
        ``(B, 1, H, W)`` float32 {0., 1.}.
    """
    if augment is None:
        x, lung_f = images.float() / 255.0, lung.float()
        y = None if target is None else target.float()
    else:  # uint8 in (it flips bytes, 20x cheaper than floats), float32 out
        x, lung_f, y = augment(images, lung, target, generator=generator, mask_dtype=torch.float32)
    if y is None:
        y = lung_f
    if lung_only:
        x = x * lung_f  # report 004: keep only the lungs, before normalisation
    if inputs.startswith("rgb"):
        x = imagenet_normalize(x)
    if inputs.endswith("+lung"):
        x = torch.cat([x, lung_f], dim=1)
    return x, y, lung_f


class BatchLoader:
    """Shuffled batches from a ``SegData`` held whole in memory (on the GPU when asked).

    Args:
        data: the split, from ``load_split``.
        batch_size: images per batch.
        shuffle: a new order each epoch, a pure function of ``(seed, epoch)``.
        target: ``"infection"`` or ``"lung"``: which mask becomes ``y``.
        inputs: ``"grey"`` (pixel/255, 1 channel), ``"rgb"`` (grey x3, ImageNet-normalised),
            ``"grey+lung"`` / ``"rgb+lung"`` (lung mask appended as the last channel).
        lung_only: multiply the image by the lung mask before normalisation (report 004).
        augment: an ``Augment`` applied per batch on the device, or ``None``.
        device: where batches go (default: where ``data`` is).
        drop_last: drop a last batch smaller than ``batch_size``.
        seed: seeds the shuffle order and the augmentation.
        resident: copy the whole split to ``device`` once (uint8); with ``False`` on CUDA the
            data stays on the CPU and each batch is gathered into pinned memory and copied
            asynchronously (for splits larger than the GPU's memory). ``None`` (default):
            resident when the split fits in the GPU's free memory with headroom for the
            model (``labkit.data.cache.fits_on_gpu``), else the pinned-CPU path, said once.
        channels_last: return ``x`` in ``torch.channels_last`` memory format.

    Iterating again without ``set_epoch`` moves on to the next epoch's order.
    """

    def __init__(
        self,
        data: SegData,
        batch_size: int,
        shuffle: bool = True,
        target: str = "infection",
        inputs: str = "grey",
        lung_only: bool = False,
        augment: Augment | None = None,
        device: str | torch.device | None = None,
        drop_last: bool = False,
        seed: int = 0,
        resident: bool | None = None,
        channels_last: bool = False,
    ) -> None:
        _validate(data, target, inputs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if len(data) == 0:
            raise ValueError("data: the SegData is empty")
        self.device = torch.device(device) if device is not None else data.device
        if resident is None:
            resident = resident_on(data, self.device)
        if resident and data.device != self.device:
            data = data.to(self.device)  # once: every batch is then a gather on the device
        self.data = data
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.target, self.inputs, self.lung_only = target, inputs, lung_only
        self.augment, self.seed, self.channels_last = augment, seed, channels_last
        self.epoch = 0
        self.rank, self.world_size = 0, 1  # one process; see shard()

    def shard(self, rank: int, world_size: int) -> BatchLoader:
        """This process's part of every epoch, for training in several processes (torchrun).

        As ``DistributedSampler`` does: every epoch's order (a function of ``(seed, epoch)``,
        the same in every process) is split so that ``rank`` gets positions ``rank, rank +
        world_size, ...``; together the ranks see each image once per epoch. Augmentation
        draws differ between ranks. ``labkit.train.fit`` calls this under torchrun.

        Args:
            rank: this process, in ``[0, world_size)``.
            world_size: number of processes.

        Returns:
            A new loader sharing the data (this one is unchanged).

        Raises:
            ValueError: a bad rank or world size, an already sharded loader, or fewer
                images than processes.
        """
        if not (isinstance(world_size, int) and world_size >= 1):
            raise ValueError(f"world_size: expected an int >= 1, got {world_size!r}")
        if not (isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"rank: expected an int in [0, {world_size}), got {rank!r}")
        if self.world_size != 1:
            raise ValueError("shard: this loader is already one shard; shard the full loader")
        if len(self.data) < world_size:
            raise ValueError(
                f"data: {len(self.data)} image(s) cannot be split among {world_size} processes"
            )
        part = copy.copy(self)
        part.rank, part.world_size = rank, world_size
        return part

    def __len__(self) -> int:
        n = len(range(self.rank, len(self.data), self.world_size))  # this shard's images
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose shuffle order (and augmentation) the next iteration uses."""
        self.epoch = int(epoch)

    def order(self, epoch: int | None = None) -> torch.Tensor:
        """Sample order for ``epoch`` (default: the current one), a CPU long tensor: this
        shard's part (every ``world_size``-th position from ``rank``) of the full order."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.data)
        if not self.shuffle:
            return torch.arange(n)[self.rank :: self.world_size]
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        return torch.randperm(n, generator=g)[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[Batch]:
        order, epoch = self.order(), self.epoch
        self.epoch += 1
        if self.device.type == "cpu":
            keep_freed_memory()  # batches reuse the pages earlier batches freed
        aug_seed = (self.seed * 1_000_003 + epoch) % 2**63 + 7919 + 104_729 * self.rank
        aug_gen = torch.Generator().manual_seed(aug_seed)  # rank 0: as without shards
        d = self.data
        # The order goes to where the data lives once per epoch, not once per gathered tensor:
        # each copy to a GPU would make the CPU wait instead of preparing the next batch.
        order_here = order.to(d.images.device)
        for b in range(len(self)):
            rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
            index, here = order[rows], order_here[rows]
            parts = [self._gather(d.images, here), self._gather(d.lung, here)]
            target = self._gather(d.infection, here) if self.target == "infection" else None
            x, y, lung = make_inputs(
                parts[0], parts[1], target, self.inputs, self.lung_only, self.augment, aug_gen
            )
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield Batch(x, y, lung, index)

    def _gather(self, t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``t[index]`` on the loader's device (uint8, so copies are 4x smaller than float);
        ``index`` lives on ``t``'s device."""
        if self.device.type == "cuda" and t.device.type == "cpu":
            # Gather into page-locked memory so the copy to the GPU is asynchronous.
            buf = torch.empty((len(index), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
            torch.index_select(t, 0, index, out=buf)
            return buf.to(self.device, non_blocking=True)
        return t.index_select(0, index).to(self.device)


class SegDataset(torch.utils.data.Dataset):
    """A ``torch.utils.data.Dataset`` over a ``SegData``: one ``Batch`` of unbatched tensors per item.

    Items are ``Batch(x (C, H, W), y (1, H, W), lung (1, H, W), index)``; a ``DataLoader``
    collates them into a ``Batch`` of batched tensors. Augmentation, if given, uses torch's
    global random state (a ``DataLoader`` seeds it per worker).
    """

    def __init__(
        self,
        data: SegData,
        target: str = "infection",
        inputs: str = "grey",
        lung_only: bool = False,
        augment: Augment | None = None,
    ) -> None:
        _validate(data, target, inputs)
        self.data, self.target, self.inputs = data.to("cpu"), target, inputs
        self.lung_only, self.augment = lung_only, augment

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Batch:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        d, sl = self.data, slice(i, i + 1 if i != -1 else None)
        target = d.infection[sl] if self.target == "infection" else None
        x, y, lung = make_inputs(
            d.images[sl], d.lung[sl], target, self.inputs, self.lung_only, self.augment
        )
        return Batch(x[0], y[0], lung[0], torch.tensor(i % len(self)))
