"""Tiny real CT trees (NIfTI files written with nibabel) for the lab 07 tests."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np

from labkit.ct.layout import COLUMNS, CT_FOLDER, MASK_FOLDERS, METADATA


def write_nifti(path: Path, array: np.ndarray, spacing=(0.7, 0.7, 5.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))
    return path


def write_subject(root: Path, ct_name: str, subject: str, ct: np.ndarray, infection: np.ndarray):
    """One subject: CT, lungs (left half 1, right half 2), infection, combined mask."""
    lung = np.zeros(ct.shape, np.uint8)
    lung[1:-1, 1 : ct.shape[1] // 2] = 1
    lung[1:-1, ct.shape[1] // 2 : -1] = 2
    write_nifti(root / CT_FOLDER / ct_name, ct)
    write_nifti(root / "lung_mask" / f"{subject}.nii", lung)
    write_nifti(root / "infection_mask" / f"{subject}.nii", infection.astype(np.uint8))
    both = np.where(infection > 0, 3, lung).astype(np.uint8)
    write_nifti(root / "lung_and_infection_mask" / f"{subject}.nii", both)
    return [f"../input/covid19-ct-scans/{CT_FOLDER}/{ct_name}"] + [
        f"../input/covid19-ct-scans/{f}/{subject}.nii" for f in MASK_FOLDERS
    ]


def small_ct_tree(root: Path, n: int = 4, metadata: bool = True) -> Path:
    """``n`` subjects of 12x10x6: even ones raw HU (int16), odd ones windowed (uint8)."""
    rows = []
    for i in range(n):
        infection = np.zeros((12, 10, 6), np.uint8)
        infection[3:6, 2:5, 1 + i % 3 : 3 + i % 3] = 1
        if i % 2 == 0:
            ct = np.full((12, 10, 6), -1000, np.int16)
            ct[infection > 0] = -400
            rows.append(
                write_subject(
                    root, f"coronacases_org_{i:03d}.nii", f"coronacases_{i:03d}", ct, infection
                )
            )
        else:
            ct = np.full((12, 10, 6), 40, np.uint8)
            ct[infection > 0] = 144
            rid = f"{i}_5000{i}_0"  # the published form, e.g. 10_85902_1
            rows.append(
                write_subject(root, f"radiopaedia_org_covid-19-pneumonia-{rid}-dcm.nii",
                              f"radiopaedia_{rid}", ct, infection)
            )  # fmt: skip
    if metadata:
        with open(root / METADATA, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return root
