"""Synthetic CT volumes in the Kaggle "COVID-19 CT scans" layout, for offline work and tests.

Each phantom subject is a chest-like volume ``(X, Y, Z)``: air (-1000 HU) around an
elliptic body of soft tissue (40 HU), two lungs (-850 HU, labels 1 and 2), one or two
ground-glass infection blobs inside the lungs (-450 to -250 HU) and, outside the lungs,
two blobs of the same intensity (labkit's stand-in for tissue outside the lungs that
resembles infection; not a physical model of any tissue) that only the lung mask tells
apart from infection: lab 07's hypothesis for the lung-masked vs original comparison,
built into the phantom, not tested by it. Gaussian
noise (25 HU) on top. Half the subjects are written as raw HU (``coronacases_org_00N.nii``,
int16), half already windowed to [-1250, 250] HU and rescaled to 0-255
(``radiopaedia_org_covid-19-pneumonia-<a>_<b>_<c>-dcm.nii`` with masks
``radiopaedia_<a>_<b>_<c>.nii``, uint8), named as in the published set.
In-plane sides and slice counts vary per subject; so do the voxel spacings in the header
(written only: shapes are drawn in voxels, so resampling a phantom would distort it).
Lesions are small against the volume (about 0.1 % of the voxels), so that, as on real CT,
most uniformly drawn patches hold no infection (lab 07, section 3; measured in
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from labkit.ct.layout import COLUMNS, CT_FOLDER, MASK_FOLDERS, METADATA
from labkit.ct.volume import HU_WINDOW

PHANTOM_MARKER = "phantom.json"
# bumped whenever the same arguments give other volumes, so that a cached phantom of an
# older labkit is not reused (labkit.ct.locate names the cache folder with it)
PHANTOM_VERSION = 2
KAGGLE_PREFIX = "../input/covid19-ct-scans"  # how the published metadata.csv writes paths


def _ellipsoid(grid: tuple[np.ndarray, ...], centre, radii) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def phantom_subject(
    rng: np.random.Generator, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic subject: ``(hu float32, lung uint8 {0,1,2}, infection uint8 {0,1})``,
    each of ``shape`` ``(X, Y, Z)``. Every subject has infection voxels."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    grid = np.meshgrid(*axes, indexing="ij")  # normalised coordinates in [-1, 1]
    x, y = grid[0], grid[1]
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[(x / 0.92) ** 2 + (y / 0.78) ** 2 <= 1.0] = 40.0  # the body, an elliptic cylinder
    lung = np.zeros(shape, dtype=np.uint8)
    for label, side in ((1, -1.0), (2, 1.0)):
        centre = (side * rng.uniform(0.33, 0.42), rng.uniform(-0.1, 0.05), rng.uniform(-0.1, 0.1))
        radii = (rng.uniform(0.25, 0.32), rng.uniform(0.45, 0.55), rng.uniform(0.8, 0.95))
        lung[_ellipsoid(grid, centre, radii) & (lung == 0)] = label
    hu[lung > 0] = -850.0
    infection = np.zeros(shape, dtype=bool)
    lung_voxels = np.argwhere(lung > 0)
    while not infection.any():
        for _ in range(int(rng.integers(1, 3))):
            centre = [axes[a][i] for a, i in enumerate(lung_voxels[rng.integers(len(lung_voxels))])]
            radii = (rng.uniform(0.08, 0.14), rng.uniform(0.08, 0.16), rng.uniform(0.10, 0.20))
            infection |= _ellipsoid(grid, centre, radii) & (lung > 0)
    hu[infection] = rng.uniform(-450.0, -250.0)
    body = hu > -900.0
    for _ in range(2):  # infection-like pockets outside the lungs: only the lung mask helps
        candidates = np.argwhere(body & (lung == 0))
        centre = [axes[a][i] for a, i in enumerate(candidates[rng.integers(len(candidates))])]
        hu[_ellipsoid(grid, centre, (0.07, 0.07, 0.3)) & body & (lung == 0)] = -350.0
    hu += rng.normal(0.0, 25.0, size=shape).astype(np.float32)
    return hu, lung, infection.astype(np.uint8)


def _write(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> None:
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(array, affine), str(path))


def make_ct_phantom(
    out: str | Path,
    n: int = 20,
    seed: int = 0,
    sides: tuple[int, ...] = (64, 80, 96),
    slices: tuple[int, int] = (16, 40),
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``n`` synthetic subjects in the Kaggle CT layout into ``out``.

    Args:
        out: folder to create. An existing folder must be empty, or a phantom (it holds
            ``phantom.json``) with ``overwrite=True``.
        n: subjects, at least 3 (report 004's set has 20: 14/2/4).
        seed: the same arguments always give the same volumes.
        sides: in-plane sides (X = Y) drawn from.
        slices: the range of slice counts Z (inclusive).
        overwrite: replace an earlier phantom in ``out``.
        progress: show a tqdm progress bar.

    Returns:
        ``out``.

    Raises:
        ValueError: bad ``n``, ``sides`` or ``slices``.
        FileExistsError: ``out`` holds something that is not a phantom.
    """
    from tqdm.auto import tqdm

    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an int >= 3 (a train/val/test split), got {n!r}")
    if not sides or min(sides) < 16 or not (1 <= slices[0] <= slices[1]):
        raise ValueError(
            f"sides must be >= 16 and slices a (low, high) range, got {sides}, {slices}"
        )
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / PHANTOM_MARKER).is_file():
            raise FileExistsError(f"{out}: not empty and not a phantom; choose another folder")
        if not overwrite:
            raise FileExistsError(f"{out}: holds a phantom already (overwrite=True replaces it)")
        shutil.rmtree(out)
    for folder in (CT_FOLDER, *MASK_FOLDERS):
        (out / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    low, high = HU_WINDOW
    for i in tqdm(range(n), desc="CT phantom", unit="volume", disable=not progress):
        side = int(rng.choice(sides))
        shape = (side, side, int(rng.integers(slices[0], slices[1] + 1)))
        hu, lung, infection = phantom_subject(rng, shape)
        spacing = (round(float(rng.uniform(0.6, 0.9)), 3),) * 2 + (float(rng.choice([1.0, 5.0])),)
        if i % 2 == 0:  # Coronacases style: raw HU, int16
            ct_name, subject = (
                f"coronacases_org_{i // 2 + 1:03d}.nii",
                f"coronacases_{i // 2 + 1:03d}",
            )
            ct = np.round(hu).astype(np.int16)
        else:  # Radiopaedia style: windowed to [-1250, 250] HU and rescaled to 0-255, uint8
            rid = f"{i // 2 + 1}_{90000 + i}_0"  # the published form: 10_85902_1
            ct_name = f"radiopaedia_org_covid-19-pneumonia-{rid}-dcm.nii"
            subject = f"radiopaedia_{rid}"
            ct = np.round((np.clip(hu, low, high) - low) / (high - low) * 255).astype(np.uint8)
        masks = {
            "lung_mask": lung,
            "infection_mask": infection,
            "lung_and_infection_mask": np.where(infection > 0, 3, lung).astype(np.uint8),
        }
        _write(out / CT_FOLDER / ct_name, ct, spacing)
        for folder, mask in masks.items():
            _write(out / folder / f"{subject}.nii", mask, spacing)
        names = [f"{CT_FOLDER}/{ct_name}", *(f"{f}/{subject}.nii" for f in MASK_FOLDERS)]
        rows.append([f"{KAGGLE_PREFIX}/{name}" for name in names])
    with open(out / METADATA, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    settings = {"kind": "ct", "n": n, "seed": seed, "sides": list(sides), "slices": list(slices)}
    (out / PHANTOM_MARKER).write_text(json.dumps(settings, indent=1), encoding="utf-8")
    return out
