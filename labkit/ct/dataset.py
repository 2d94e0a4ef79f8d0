"""CT subjects in memory: every volume windowed to one scale, with its lung and infection masks.

Volumes are kept as uint8 (the [0, 1] lung-window scale times 255, about 6 HU per step):
a 512 x 512 x 300 CT is 79 MB this way instead of 315 MB as float32, so the 20 subjects fit
in a Colab runtime's memory. Patches become float32 only when a batch is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from labkit.ct.layout import CTRecord
from labkit.ct.volume import check_mask_labels, detect_convention, load_nifti, window_ct


@dataclass
class CTVolume:
    """One subject, ready for patches and sliding-window inference.

    Attributes:
        subject: the subject's name (``coronacases_001``).
        image: uint8 ``(X, Y, Z)``: the lung window [-1250, 250] HU as 0-255.
        lung: uint8 ``(X, Y, Z)`` {0, 1} (both lungs).
        infection: uint8 ``(X, Y, Z)`` {0, 1}.
        spacing: voxel size in mm, from the header.
        convention: ``"hu"`` or ``"windowed"``, as found on disk.
        shape: ``(X, Y, Z)`` as stored, before any padding up to the patch size.
    """

    subject: str
    image: torch.Tensor
    lung: torch.Tensor
    infection: torch.Tensor
    spacing: tuple[float, float, float]
    convention: str
    shape: tuple[int, int, int]

    def inputs(self, lung_only: bool = False) -> torch.Tensor:
        """The network input ``(1, 1, X, Y, Z)`` float32 in [0, 1] (lung-masked if asked)."""
        x = self.image.float() / 255.0
        if lung_only:
            x = x * self.lung
        return x[None, None]

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.shape))
        return (
            f"CTVolume({self.subject}: {shape}, {self.convention}, "
            f"{int(self.infection.sum()):,} infection voxels)"
        )


def load_ct_volume(record: CTRecord, min_size: tuple[int, int, int] | None = None) -> CTVolume:
    """Read one subject: CT windowed by its own convention, lung labels 1/2 merged to 1.

    Args:
        record: the subject's files.
        min_size: pad (at the end of each axis: image and masks with 0) so that every side
            is at least this (a patch must fit); ``shape`` keeps the stored size.

    Raises:
        ValueError: unreadable files, bad mask labels, or masks of another shape than the
            CT (the message names the file).
    """
    ct, spacing = load_nifti(record.ct)
    convention = detect_convention(ct)
    masks = []
    for folder, path in (("lung_mask", record.lung), ("infection_mask", record.infection)):
        mask, _ = load_nifti(path)
        if mask.shape != ct.shape:
            raise ValueError(f"{path}: shape {mask.shape} differs from the CT's {ct.shape}")
        masks.append(torch.from_numpy(check_mask_labels(mask, folder, path) > 0).to(torch.uint8))
    image = (window_ct(torch.from_numpy(ct.astype("float32")), convention) * 255).round()
    image = image.to(torch.uint8)
    tensors = [image, *masks]
    if min_size is not None:
        pad = [max(0, m - s) for m, s in zip(min_size, ct.shape)]
        # F.pad takes (last axis before, after, ...): pad only after, Z first.
        spec = [v for p in reversed(pad) for v in (0, p)]
        tensors = [F.pad(t, spec) if any(pad) else t for t in tensors]
    shape = (int(ct.shape[0]), int(ct.shape[1]), int(ct.shape[2]))
    return CTVolume(record.subject, *tensors, spacing, convention, shape)


def load_ct_volumes(
    records: list[CTRecord],
    min_size: tuple[int, int, int] | None = None,
    progress: bool = True,
) -> list[CTVolume]:
    """:func:`load_ct_volume` for each record, with a progress bar."""
    from tqdm.auto import tqdm

    bar = tqdm(records, desc="loading CT", unit="volume", disable=not progress)
    volumes = [load_ct_volume(r, min_size) for r in bar]
    voxels = sum(v.image.numel() for v in volumes)
    bar.set_postfix_str(f"{len(volumes)} volumes, {voxels / 1e6:.1f} M voxels")
    bar.close()
    return volumes
