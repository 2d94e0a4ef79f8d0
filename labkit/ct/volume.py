"""One CT volume on disk: read a NIfTI file safely, and bring its intensities to one scale.

The Kaggle "COVID-19 CT scans" set mixes two intensity conventions:

* ``"hu"``: the 10 Coronacases volumes hold raw Hounsfield units (air -1000, lung about
  -850, ground-glass infection about -700 to -300, soft tissue 0 to 100, bone above 300);
* ``"windowed"``: the 10 Radiopaedia volumes were already clipped to the lung window
  [-1250, 250] HU and rescaled to 0-255 (COVID-19-CT-Seg-Benchmark, Ma et al.).

A network trained on one scale sees the other as a different image: the same lung is
-850 in one file and 68 in the other. :func:`window_ct` maps both to [0, 1] so that 0 is
-1250 HU and 1 is 250 HU in every volume; :func:`detect_convention` decides which rule a
volume needs from its values. Orientation is kept as stored (``(X, Y, Z)``, Z = slices).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

HU_WINDOW = (-1250.0, 250.0)  # the lung window both conventions share (JunMa11's benchmark)
CONVENTIONS = ("hu", "windowed")
# Documented labels per mask folder (issue 18): lungs are 1 and 2, infection 1, both 1/2/3.
MASK_LABELS = {
    "lung_mask": (0, 1, 2),
    "infection_mask": (0, 1),
    "lung_and_infection_mask": (0, 1, 2, 3),
}


def load_nifti(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read a 3-D NIfTI volume with nibabel.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(array, spacing)``: the voxels as stored, ``(X, Y, Z)`` (float32 for CT, whatever
        integer or float type the file holds), and the voxel size in mm.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a NIfTI file, truncated/unreadable, or not 3-D (a 4-D volume is
            accepted only with a last axis of length 1); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such NIfTI file")
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises several types for bad headers / short data
        raise ValueError(
            f"{path}: not a readable NIfTI volume ({type(err).__name__}: {str(err)[:120]})"
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(
            f"{path}: expected a 3-D volume (X, Y, Z), got {data.ndim}-D shape {data.shape}"
        )
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    return data, (zooms[0], zooms[1], zooms[2])


def check_mask_labels(mask: np.ndarray, folder: str, path: str | Path) -> np.ndarray:
    """``mask`` as uint8 if every value is one of ``folder``'s documented labels.

    Raises:
        ValueError: a value outside :data:`MASK_LABELS` ``[folder]`` (or not an integer),
            naming the file and the values found.
    """
    allowed = MASK_LABELS[folder]
    values = np.unique(mask)
    bad = [v for v in values.tolist() if v not in allowed]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:5])
        raise ValueError(
            f"{path}: {folder} values must be in {allowed}, found {shown}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        )
    return mask.astype(np.uint8)


def detect_convention(volume: np.ndarray | torch.Tensor) -> str:
    """``"hu"`` for raw Hounsfield units, ``"windowed"`` for a volume already in 0-255.

    A raw CT has air at about -1000 HU, so any negative value (or one above 255) means HU;
    a volume whose values all lie in [0, 255] was windowed and rescaled.
    """
    low, high = float(volume.min()), float(volume.max())
    return "windowed" if low >= 0 and high <= 255 else "hu"


def window_ct(volume: torch.Tensor, convention: str) -> torch.Tensor:
    """Both conventions to one scale: float32 in [0, 1], 0 = -1250 HU, 1 = 250 HU.

    Args:
        volume: a CT volume (any shape), raw HU or windowed 0-255.
        convention: ``"hu"`` (clip to [-1250, 250], then rescale) or ``"windowed"``
            (divide by 255; the clipping was done before the file was written).

    Returns:
        float32 tensor of the same shape, values in [0, 1].

    Raises:
        ValueError: an unknown convention.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    v = torch.as_tensor(volume).to(torch.float32)
    if convention == "hu":
        low, high = HU_WINDOW
        return (v.clamp(low, high) - low) / (high - low)
    return (v / 255.0).clamp(0.0, 1.0)
