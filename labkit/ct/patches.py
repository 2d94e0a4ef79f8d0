"""Training on patches: report 004 trains on 128 x 128 x 8 patches (the syllabus gives only
the patch size).

Infection fills a small share of a CT, so patches drawn uniformly are mostly
empty and a network learns to predict "nothing". :func:`sample_patch_starts` therefore
draws a stated share of *positive* patches (each contains at least one infection voxel,
placed at a random position inside the patch) and the rest uniformly. The syllabus gives
no share for report 004; labkit uses ``POSITIVE_SHARE = 0.5`` (nnU-Net uses 1/3).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from labkit.ct.dataset import CTVolume

POSITIVE_SHARE = 0.5  # labkit's choice: half of the patches contain infection
REPORT_PATCH = (128, 128, 8)  # report 004's patch, (X, Y, Z): 8 slices


def sample_patch_starts(
    shape: tuple[int, int, int],
    positives: torch.Tensor,
    patch: tuple[int, int, int],
    n: int,
    positive_share: float = POSITIVE_SHARE,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Corners of ``n`` patches in a volume: the first ``round(n * positive_share)`` contain
    infection, the rest are uniform.

    A positive patch picks a random infection voxel ``v`` and a random offset ``o`` in
    ``[0, patch)`` per axis, starts at ``v - o`` and is clamped into the volume (the voxel
    stays inside). With no infection voxel every patch is uniform.

    Args:
        shape: the volume's ``(X, Y, Z)``; every side at least the patch's.
        positives: ``(K, 3)`` int64 coordinates of the infection voxels (``nonzero()``).
        patch: the patch's ``(X, Y, Z)``.
        n: how many patches.
        positive_share: fraction in [0, 1] that must contain infection.
        generator: a seeded ``torch.Generator`` (the same one gives the same patches).

    Returns:
        int64 ``(n, 3)``: each patch covers ``start[a] : start[a] + patch[a]`` on axis ``a``.

    Raises:
        ValueError: a patch larger than the volume, or a share outside [0, 1].
    """
    if any(p > s for p, s in zip(patch, shape)):
        raise ValueError(f"patch {tuple(patch)} is larger than the volume {tuple(shape)}")
    if not 0.0 <= positive_share <= 1.0:
        raise ValueError(f"positive_share must be in [0, 1], got {positive_share!r}")
    size = torch.tensor(patch)
    highest = torch.tensor(shape) - size  # the last valid start per axis
    n_pos = round(n * positive_share) if len(positives) else 0
    pick = torch.randint(len(positives) or 1, (n_pos,), generator=generator)
    offset = (torch.rand(n_pos, 3, generator=generator) * size).long()  # in [0, patch)
    pos = (positives[pick] - offset).clamp(min=torch.zeros(3, dtype=torch.long), max=highest)
    uniform = (torch.rand(n - n_pos, 3, generator=generator) * (highest + 1)).long()
    return torch.cat([pos.long(), uniform])


def crop(volume: torch.Tensor, start: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """``volume[x:x+px, y:y+py, z:z+pz]`` for ``start = (x, y, z)``."""
    x, y, z = (int(s) for s in start)
    return volume[x : x + patch[0], y : y + patch[1], z : z + patch[2]]


class PatchLoader:
    """Batches of patches from training volumes; an epoch is ``patches_per_volume`` patches
    of every volume, shuffled.

    Each batch is ``(x, y)``: ``x`` float32 ``(B, 1, *patch)`` in [0, 1] (lung-masked with
    ``lung_only``), ``y`` float32 ``(B, 1, *patch)`` {0, 1}. Only patches are ever copied
    to ``device``: memory is bounded by the batch, whatever the volumes' sizes.

    Args:
        volumes: training subjects (sides at least ``patch``: load with ``min_size=patch``).
        patch: ``(X, Y, Z)`` patch size.
        batch_size: patches per batch (report 004: 5).
        patches_per_volume: patches drawn from each volume per epoch.
        positive_share: share of patches with infection (see :func:`sample_patch_starts`).
        lung_only: multiply the image by the lung mask (report 004's main setting, by labkit's inference).
        device: where batches go.
        seed: epoch ``e`` draws with seed ``seed + e``: reproducible, independent of time.
    """

    def __init__(
        self,
        volumes: list[CTVolume],
        patch: tuple[int, int, int],
        batch_size: int = 5,
        patches_per_volume: int = 10,
        positive_share: float = POSITIVE_SHARE,
        lung_only: bool = True,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if not volumes:
            raise ValueError("volumes: no training volumes")
        if batch_size < 1 or patches_per_volume < 1:
            raise ValueError(
                f"batch_size and patches_per_volume must be >= 1, got {batch_size}, "
                f"{patches_per_volume}"
            )
        self.volumes, self.patch = volumes, tuple(patch)
        self.batch_size, self.patches_per_volume = batch_size, patches_per_volume
        self.positive_share, self.lung_only = positive_share, lung_only
        self.device, self.seed, self.epoch = torch.device(device), seed, 0
        # (K, 3) infection coordinates per volume, found once (nonzero is slow on big volumes)
        self.positives = [v.infection.nonzero() for v in volumes]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.volumes) * self.patches_per_volume // self.batch_size)

    def epoch_patches(self) -> list[tuple[int, torch.Tensor]]:
        """This epoch's ``(volume index, start)`` pairs, in training order."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        pairs = []
        for i, (vol, pos) in enumerate(zip(self.volumes, self.positives)):
            starts = sample_patch_starts(
                tuple(vol.image.shape),
                pos,
                self.patch,
                self.patches_per_volume,
                self.positive_share,
                g,
            )
            pairs += [(i, s) for s in starts]
        order = torch.randperm(len(pairs), generator=g).tolist()
        return [pairs[k] for k in order]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pairs = self.epoch_patches()
        self.epoch += 1
        for b in range(0, len(pairs), self.batch_size):
            xs, ys = [], []
            for i, start in pairs[b : b + self.batch_size]:
                vol = self.volumes[i]
                image = crop(vol.image, start, self.patch).float() / 255.0
                if self.lung_only:
                    image = image * crop(vol.lung, start, self.patch)
                xs.append(image)
                ys.append(crop(vol.infection, start, self.patch).float())
            x = torch.stack(xs)[:, None]  # (B, 1, X, Y, Z)
            y = torch.stack(ys)[:, None]
            yield x.to(self.device), y.to(self.device)


def positive_fraction(loader: PatchLoader) -> float:
    """The share of this epoch's patches that contain infection (measured, not assumed)."""
    pairs = loader.epoch_patches()
    hits = sum(bool(crop(loader.volumes[i].infection, s, loader.patch).any()) for i, s in pairs)
    return hits / len(pairs)
