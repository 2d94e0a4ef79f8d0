"""The Kaggle "COVID-19 CT scans" layout: find the tree, pair each CT with its masks, split.

The published tree (andrewmvd/covid19-ct-scans)::

    ROOT/metadata.csv            columns ct_scan, lung_mask, infection_mask,
                                 lung_and_infection_mask; Kaggle-relative paths such as
                                 ../input/covid19-ct-scans/ct_scans/coronacases_org_001.nii
    ROOT/ct_scans/               coronacases_org_001.nii,
                                 radiopaedia_org_covid-19-pneumonia-10_85902_1-dcm.nii
    ROOT/lung_mask/              coronacases_001.nii, radiopaedia_10_85902_1.nii (lungs 1, 2)
    ROOT/infection_mask/         same names (0 / 1)
    ROOT/lung_and_infection_mask same names (0 background, 1/2 lungs, 3 infection)

Listing only (no file is read here): ``labkit.ct.validate`` reads the volumes.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

from labkit.data.layout import Problem

METADATA = "metadata.csv"
CT_FOLDER = "ct_scans"
MASK_FOLDERS = ("lung_mask", "infection_mask", "lung_and_infection_mask")
COLUMNS = ("ct_scan", *MASK_FOLDERS)  # metadata.csv's columns, in the folders' order
SPLIT_COUNTS = (14, 2, 4)  # report 004: train / val / test subjects out of 20
SPLIT_NAMES = ("train", "val", "test")
_CT_NAME = re.compile(r"^(coronacases|radiopaedia)_org_(?:covid-19-pneumonia-)?(.+?)(?:-dcm)?$")


@dataclass(frozen=True)
class CTRecord:
    """One subject: its CT file and three mask files (which may not exist; check says so)."""

    subject: str  # the masks' file stem, e.g. "coronacases_001", "radiopaedia_10_85902_1"
    ct: Path
    lung: Path
    infection: Path
    lung_and_infection: Path

    @property
    def source(self) -> str:
        """``"coronacases"`` or ``"radiopaedia"`` (or the stem's first word)."""
        return self.subject.split("_")[0]


def _stem(name: str) -> str:
    return name[:-7] if name.endswith(".nii.gz") else Path(name).stem


def subject_of(ct_name: str) -> str:
    """The masks' stem for a CT file name.

    ``coronacases_org_001.nii`` -> ``coronacases_001``;
    ``radiopaedia_org_covid-19-pneumonia-10_85902_1-dcm.nii`` -> ``radiopaedia_10_85902_1``
    (the published names: underscores inside the id; hyphens there are read the same way).
    Other names keep their stem (a phantom or a user's own volumes may use plain names).
    """
    stem = _stem(ct_name)
    m = _CT_NAME.match(stem)
    return f"{m.group(1)}_{m.group(2).replace('-', '_')}" if m else stem


def is_ct_tree(folder: str | Path) -> bool:
    """Whether ``folder`` looks like a CT tree (``metadata.csv`` with the CT columns, or a
    ``ct_scans`` folder)."""
    folder = Path(folder)
    if (folder / CT_FOLDER).is_dir():
        return True
    meta = folder / METADATA
    if not meta.is_file():
        return False
    with open(meta, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    return "ct_scan" in [h.strip() for h in header]


def find_ct_root(path: str | Path, depth: int = 3) -> Path:
    """The CT tree at or up to ``depth`` folders below ``path`` (a kagglehub download nests it).

    Raises:
        FileNotFoundError: none found; the message says what was expected.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a COVID-19 CT scans tree)")
    frontier = [path]
    for _ in range(depth + 1):
        for folder in frontier:
            if is_ct_tree(folder):
                return folder
        frontier = [c for f in frontier for c in sorted(f.iterdir()) if c.is_dir()]
    raise FileNotFoundError(
        f"{path}: no CT tree found (expected {METADATA} with columns {', '.join(COLUMNS)}, "
        f"or a {CT_FOLDER}/ folder with {', '.join(MASK_FOLDERS)}/ beside it)"
    )


def kaggle_relative(root: Path, value: str) -> Path:
    """A metadata.csv path resolved against ``root``: ``../input/<dataset>/`` is stripped."""
    parts = Path(value.strip().replace("\\", "/")).parts
    if parts[:2] == ("..", "input") and len(parts) > 3:
        parts = parts[3:]  # ../input/covid19-ct-scans/<folder>/<file>
    return root.joinpath(*[p for p in parts if p not in ("..", ".")])


def _read_metadata(root: Path) -> tuple[list[CTRecord], list[Problem]]:
    meta = root / METADATA
    with open(meta, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
        header = [h.strip() for h in (rows[0].keys() if rows else [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{meta}: missing column(s) {', '.join(missing)}; expected {COLUMNS}")
    records, problems = [], []
    for line, row in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        if not all(row[c] for c in COLUMNS):
            problems.append(Problem("error", meta, f"line {line}: an empty path"))
            continue
        paths = [kaggle_relative(root, row[c]) for c in COLUMNS]
        for column, p in zip(COLUMNS, paths):
            if not p.is_file():
                problems.append(
                    Problem("error", p, f"missing file (metadata.csv line {line}, {column})")
                )
        records.append(CTRecord(_stem(paths[1].name), *paths))
    return records, problems


def _scan_folders(root: Path) -> tuple[list[CTRecord], list[Problem]]:
    records, problems = [], []
    cts = sorted(p for p in (root / CT_FOLDER).iterdir() if p.name.endswith((".nii", ".nii.gz")))
    for ct in cts:
        subject = subject_of(ct.name)
        masks = [root / folder / (subject + ".nii") for folder in MASK_FOLDERS]
        for folder, mask in zip(MASK_FOLDERS, masks):
            if not mask.is_file() and not mask.with_suffix(".nii.gz").is_file():
                problems.append(Problem("error", mask, f"missing {folder} for {ct.name}"))
        masks = [m if m.is_file() else m.with_suffix(".nii.gz") for m in masks]
        records.append(CTRecord(subject, ct, *masks))
    return records, problems


def scan_ct_tree(root: str | Path) -> tuple[list[CTRecord], list[Problem]]:
    """Every subject of a CT tree, and the listing problems (missing files), without reading.

    ``metadata.csv`` decides when present; otherwise the ``ct_scans`` folder is listed and
    each CT is paired with ``<folder>/<subject>.nii`` masks.
    """
    root = find_ct_root(root)
    if (root / METADATA).is_file():
        records, problems = _read_metadata(root)
    else:
        records, problems = _scan_folders(root)
    if not records:
        problems.append(Problem("error", root, "no CT volumes listed"))
    return records, problems


def index_ct(root: str | Path) -> list[CTRecord]:
    """The subjects of a CT tree, in file-name order.

    Raises:
        FileNotFoundError: a listed file is missing (the first one is named).
    """
    records, problems = scan_ct_tree(root)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more problems: labkit data check)" if errors[1:] else ""
        raise FileNotFoundError(f"{errors[0].path}: {errors[0].message}{more}")
    return sorted(records, key=lambda r: r.ct.name)


def split_subjects(
    records: list[CTRecord], counts: tuple[int, int, int] = SPLIT_COUNTS, seed: int = 0
) -> dict[str, list[CTRecord]]:
    """Subject-level split: no slice of a test subject is ever in training.

    Subjects are shuffled with ``seed`` within each source (Coronacases, Radiopaedia), the
    sources are interleaved so both intensity conventions reach every split, and the first
    subjects go to test, the next to val, the rest to train. ``counts`` are report 004's
    14/2/4 out of 20; for another number of subjects they are scaled (at least one val and
    one test subject).

    Raises:
        ValueError: fewer than 3 subjects.
    """
    n = len(records)
    if n < 3:
        raise ValueError(f"records: a train/val/test split needs at least 3 subjects, got {n}")
    total = sum(counts)
    n_test = max(1, round(n * counts[2] / total))
    n_val = max(1, round(n * counts[1] / total))
    rng = random.Random(seed)
    groups: dict[str, list[CTRecord]] = {}
    for r in sorted(records, key=lambda r: r.subject):
        groups.setdefault(r.source, []).append(r)
    for members in groups.values():
        rng.shuffle(members)
    order = [
        g[i] for i in range(max(map(len, groups.values()))) for g in groups.values() if i < len(g)
    ]
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return {
        name: sorted(s, key=lambda r: r.subject) for name, s in zip(SPLIT_NAMES, (train, val, test))
    }
