"""``labkit data check`` for a CT tree: read every volume, one table row per subject, and
every defect named with its file (missing mask, shape mismatch, unreadable or truncated
NIfTI, a metadata row pointing to a missing file, mask values outside the labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit.ct.layout import CTRecord, find_ct_root, scan_ct_tree
from labkit.ct.volume import check_mask_labels, detect_convention, load_nifti
from labkit.data.layout import Findings, Problem


@dataclass
class VolumeRow:
    """What ``labkit data check`` prints for one subject."""

    subject: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    convention: str
    infection_voxels: int | None  # None when the infection mask could not be read


@dataclass
class CTCheckReport(Findings):
    """Rows for the readable volumes, and every problem found."""

    root: Path
    rows: list[VolumeRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Usable: no errors and at least one readable subject."""
        return not self.errors and bool(self.rows)

    def table(self) -> str:
        """The per-volume table, in plain text."""
        head = (
            f"{'subject':<28} {'shape (X, Y, Z)':<16} {'spacing mm':<18} {'intensity':<9} infection"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            shape = "x".join(map(str, r.shape))
            spacing = "x".join(f"{s:.2g}" for s in r.spacing)
            voxels = "?" if r.infection_voxels is None else f"{r.infection_voxels:,} voxels"
            lines.append(f"{r.subject:<28} {shape:<16} {spacing:<18} {r.convention:<9} {voxels}")
        return "\n".join(lines)


def _check_subject(record: CTRecord, problems: list[Problem]) -> VolumeRow | None:
    if not record.ct.is_file():
        return None  # the listing already reported it
    try:
        ct, spacing = load_nifti(record.ct)
    except ValueError as err:
        problems.append(Problem("error", record.ct, str(err).split(": ", 1)[-1]))
        return None
    infection_voxels = None
    for folder, path in (
        ("lung_mask", record.lung),
        ("infection_mask", record.infection),
        ("lung_and_infection_mask", record.lung_and_infection),
    ):
        if not path.is_file():
            continue  # the listing already reported it
        try:
            mask, _ = load_nifti(path)
            mask = check_mask_labels(mask, folder, path)
        except ValueError as err:
            problems.append(Problem("error", path, str(err).split(": ", 1)[-1]))
            continue
        if mask.shape != ct.shape:
            problems.append(
                Problem("error", path, f"shape {mask.shape} differs from the CT's {ct.shape}")
            )
        elif folder == "infection_mask":
            infection_voxels = int(np.count_nonzero(mask))
            if infection_voxels == 0:
                problems.append(Problem("warning", path, "no infection voxels"))
    return VolumeRow(record.subject, ct.shape, spacing, detect_convention(ct), infection_voxels)


def check_ct(root: str | Path, progress: bool = True) -> CTCheckReport:
    """Check a CT tree: listing, then every volume and mask read and compared.

    Raises:
        FileNotFoundError: no CT tree at or below ``root``.
    """
    from tqdm.auto import tqdm

    report = CTCheckReport(find_ct_root(root))
    records, report.problems = scan_ct_tree(report.root)
    bar = tqdm(records, desc="reading volumes", unit="subject", disable=not progress)
    for record in bar:
        row = _check_subject(record, report.problems)
        if row is not None:
            report.rows.append(row)
    bar.set_postfix_str(f"{len(report.rows)} readable, {len(report.errors)} error(s)")
    bar.close()
    return report
