"""Validation of a COVID-QU-Ex tree, shared by ``labkit data check`` and the loader.

Every problem names the file (or folder) it concerns. ``error`` problems make the tree unusable
(the loader raises them); ``warning`` problems are fixed on load in a stated way (an RGB image is
converted to grey, a 0/1 or antialiased mask is thresholded) and reported.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit.data.layout import (
    CLASSES,
    SPLITS,
    Findings,
    Problem,
    Record,
    find_subset_dir,
    list_entries,
    present_subsets,
    scan_class_folder,
)


class DataFileError(ValueError):
    """A ``ValueError`` about one file; ``path`` is that file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.message = message


def read_png(path: Path, kind: str = "image") -> tuple[np.ndarray, list[Problem]]:
    """Decode one PNG to a 2-D array: images uint8 0-255, masks uint8 {0, 1}.

    Masks are thresholded with a stated rule: ``> 0`` when the stored values are all 0/1,
    otherwise ``>= 128`` (half range; ``>= 32768`` for 16-bit). Anything but {0, 255} is warned.

    Raises:
        ValueError: the file is unreadable or truncated (the message names it).
    """
    from PIL import Image  # PIL releases the GIL while decoding: threads run in parallel

    problems: list[Problem] = []
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in ("L", "1", "I;16", "I", "I;16B"):
                problems.append(
                    Problem("warning", path, f"{kind} stored as {mode}; converted to 8-bit grey")
                )
                im = im.convert("L")
            arr = np.asarray(im)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise DataFileError(
            path, f"unreadable or truncated PNG ({type(err).__name__}: {err})"
        ) from err
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    full = 255 if arr.dtype == np.uint8 else 65535
    if kind == "image":
        if full != 255:
            problems.append(Problem("warning", path, "16-bit image; rescaled to 8-bit"))
            arr = np.round(arr.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
        return np.ascontiguousarray(arr, dtype=np.uint8), problems
    # bincount is ~10x faster than np.unique on uint8 masks (no sort)
    values = (
        np.flatnonzero(np.bincount(arr.ravel(), minlength=256)) if full == 255 else np.unique(arr)
    )
    if set(values.tolist()) <= {0, full}:
        return (arr > 0).astype(np.uint8), problems
    if values.max() <= 1:
        problems.append(
            Problem("warning", path, "mask values are 0/1, not 0/255; thresholded as > 0")
        )
        return (arr > 0).astype(np.uint8), problems
    half = (full + 1) // 2
    shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
    problems.append(
        Problem(
            "warning",
            path,
            f"mask has values other than 0/{full} ({shown}); thresholded as >= {half}",
        )
    )
    return (arr >= half).astype(np.uint8), problems


def decode_record(record: Record) -> tuple[list[np.ndarray], list[Problem]]:
    """Decode a record's image and masks and check they have the same size.

    Returns:
        ``[image, lung, infection?]`` arrays and the warnings.

    Raises:
        ValueError: a file is unreadable, or a mask's size differs from its image's.
    """
    image, problems = read_png(record.image, "image")
    arrays = [image]
    for mask_path in record.paths()[1:]:
        mask, found = read_png(mask_path, "mask")
        problems += found
        if mask.shape != image.shape:
            raise DataFileError(
                mask_path,
                f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                f"{record.image} ({image.shape[1]}x{image.shape[0]})",
            )
        arrays.append(mask)
    return arrays, problems


@dataclass
class CheckReport(Findings):
    """What ``check_dataset`` found: problems, and image counts ``{subset: {split: {class: n}}}``."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` when the tree is usable: at least one subset found and no errors."""
        return bool(self.counts) and not self.errors


def check_dataset(
    root: str | Path,
    subsets: tuple[str, ...] | None = None,
    decode: bool = True,
    progress: bool = True,
) -> CheckReport:
    """Check a COVID-QU-Ex tree: layout, pairing, and (with ``decode``) every PNG's content.

    Args:
        root: dataset root at any level ``find_subset_dir`` accepts.
        subsets: subsets to check (default: every subset found under ``root``).
        decode: also decode every PNG (sizes, mask values, colour mode, truncation).
        progress: show a progress bar while decoding.

    Raises:
        FileNotFoundError: no subset was found under ``root`` (with a suggestion).
    """
    from tqdm.auto import tqdm

    report = CheckReport(Path(root))
    if subsets:
        bases = {subset: find_subset_dir(root, subset) for subset in subsets}
    else:
        bases = present_subsets(root)
        if not bases:
            find_subset_dir(root, "infection")  # raises, with what was expected and a suggestion
    records: list[Record] = []
    for subset, base in bases.items():
        report.counts[subset] = {}
        for extra in list_entries(base):
            if extra.name not in SPLITS:
                report.problems.append(Problem("warning", extra, "unexpected entry (ignored)"))
        for split in SPLITS:
            split_dir = base / split
            report.counts[subset][split] = {}
            if not split_dir.is_dir() or not any(split_dir.iterdir()):
                what = "missing" if not split_dir.is_dir() else "empty"
                report.problems.append(Problem("error", split_dir, f"{what} split folder"))
                continue
            for extra in list_entries(split_dir):
                if extra.name not in CLASSES:
                    report.problems.append(Problem("warning", extra, "unexpected entry (ignored)"))
            for cls in CLASSES:
                cls_dir = split_dir / cls
                if not cls_dir.is_dir():
                    report.problems.append(Problem("error", cls_dir, "missing class folder"))
                    report.counts[subset][split][cls] = 0
                    continue
                found, problems = scan_class_folder(cls_dir, subset, split, cls)
                report.problems += problems
                report.counts[subset][split][cls] = len(found)
                records += found
    if decode and records:

        def one(record: Record) -> list[Problem]:
            try:
                return decode_record(record)[1]
            except DataFileError as err:
                return [Problem("error", err.path, err.message)]

        with ThreadPoolExecutor() as pool:
            results = pool.map(one, records)
            for found in tqdm(
                results, total=len(records), desc="checking PNGs", disable=not progress
            ):
                report.problems += found
    return report


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # every whole PNG ends with this chunk


def png_is_whole(path: Path) -> bool:
    """Whether ``path`` ends with a PNG's end chunk: a cheap test (12 bytes read) that a
    copy was not truncated; it does not decode the pixels."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:  # shorter than the end chunk, or unreadable
        return False
