"""The COVID-QU-Ex folder layout: constants, records, and finding the dataset root.

On disk (after unzipping the Kaggle archive) each subset's folder name is repeated::

    ROOT/Infection Segmentation Data/Infection Segmentation Data/Train/COVID-19/images/covid_1.png
                                                                             /lung masks/covid_1.png
                                                                             /infection masks/covid_1.png
    ROOT/Lung Segmentation Data/Lung Segmentation Data/Val/Normal/images/Normal (1).png  (no infection masks)

An image and its masks share the file name. ``index_dataset`` pairs them and raises a clear
error for anything it cannot pair; nothing is silently skipped.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("Train", "Val", "Test")
CLASSES = ("COVID-19", "Non-COVID", "Normal")
SUBSETS = {"infection": "Infection Segmentation Data", "lung": "Lung Segmentation Data"}
IMAGES, LUNG_MASKS, INFECTION_MASKS = "images", "lung masks", "infection masks"
# Mask kinds each subset carries, besides ``images``.
MASK_KINDS = {"infection": (LUNG_MASKS, INFECTION_MASKS), "lung": (LUNG_MASKS,)}
IMAGE_SUFFIX = ".png"
# OS litter that is never data (reported by ``labkit data check``, ignored by the loader).
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Record:
    """One image and its masks.

    Args:
        subset: ``"infection"`` or ``"lung"``.
        split: one of ``SPLITS``.
        cls: one of ``CLASSES``.
        image: path of the image PNG.
        lung_mask: path of the lung mask PNG.
        infection_mask: path of the infection mask PNG, ``None`` in the lung subset.
    """

    subset: str
    split: str
    cls: str
    image: Path
    lung_mask: Path
    infection_mask: Path | None

    @property
    def name(self) -> str:
        """The shared file name, e.g. ``"Normal (1).png"``."""
        return self.image.name

    def paths(self) -> list[Path]:
        """Every file this record reads: image, lung mask, infection mask (if any)."""
        return [p for p in (self.image, self.lung_mask, self.infection_mask) if p is not None]


def check_subset(subset: str) -> str:
    """Return ``subset`` if valid, else raise ``ValueError`` listing the valid names."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    return subset


def _check_names(values, valid: tuple[str, ...], arg: str) -> tuple[str, ...]:
    if values is None:
        return valid
    if isinstance(values, str):
        values = (values,)
    values = tuple(values)
    for v in values:
        if v not in valid:
            close = difflib.get_close_matches(str(v), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{arg}: unknown value {v!r}{hint}; expected some of {', '.join(valid)}"
            )
    return values


def _has_splits(folder: Path) -> bool:
    return folder.is_dir() and any((folder / s).is_dir() for s in SPLITS)


def find_subset_dir(root: str | Path, subset: str = "infection") -> Path:
    """The folder that holds ``Train/Val/Test`` for ``subset``, given a root at any sensible level.

    Accepts the folder containing both subsets, the (outer) subset folder, its repeated inner
    folder, or any folder with ``Train``/``Val``/``Test`` inside.

    Raises:
        FileNotFoundError: nothing matching was found; the message says what was expected and
            suggests the nearest folder that looks right.
    """
    check_subset(subset)
    name = SUBSETS[subset]
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            _not_found_message(root, subset, "does not exist or is not a folder")
        )
    other = [n for k, n in SUBSETS.items() if k != subset]
    for candidate in (root / name / name, root / name, root):
        if _has_splits(candidate):
            if candidate == root and (root.name in other or root.parent.name in other):
                raise FileNotFoundError(
                    f"{root} is the {root.name!r} folder, but subset {subset!r} needs {name!r}"
                    + _suggestion(root, subset)
                )
            return candidate
    raise FileNotFoundError(_not_found_message(root, subset, "has no COVID-QU-Ex layout inside"))


def _not_found_message(root: Path, subset: str, what: str) -> str:
    name = SUBSETS[subset]
    return (
        f"dataset root {root} {what}. Expected the folder that contains {name!r} (e.g. "
        f"'<root>/{name}/{name}/Train/COVID-19/images/*.png'), the {name!r} folder itself, or a "
        f"folder with {'/'.join(SPLITS)} inside." + _suggestion(root, subset)
    )


def _suggestion(root: Path, subset: str) -> str:
    near = nearest_match(root, subset)
    return f" Did you mean {str(near)!r}?" if near is not None else ""


def nearest_match(path: str | Path, subset: str = "infection") -> Path | None:
    """A folder the user plausibly meant by ``path`` that is a dataset root for ``subset``, or
    ``None`` (then say nothing rather than name an unrelated folder).

    Three places count: up to two levels below ``path`` (never below ``/``, the home folder or
    the temporary folder: what lies there is unrelated), a folder holding ``path`` (a split
    folder given), and a sibling with a close name (``covidq``; ``covidqu.zip`` beside the
    unzipped ``covidqu``). Elsewhere, however near, is no suggestion.
    """
    name = SUBSETS[subset]
    path = Path(path).expanduser().absolute()

    def plausible(folder: Path) -> bool:
        return folder != path and _looks_like_root(folder, name)

    if path.is_dir() and path not in _broad_folders():
        frontier = [path]
        for _depth in range(3):  # path, its children, its grandchildren
            for folder in frontier:
                if plausible(folder):
                    return folder
            frontier = [c for f in frontier for c in subdirs(f)][:200]
    for folder in path.parents[:3]:  # a split or class folder given: the root holding it
        if plausible(folder):
            return folder
    if not path.is_dir() and path.parent.is_dir():  # a typo in the last component
        siblings = [p.name for p in subdirs(path.parent)]
        for close in difflib.get_close_matches(path.name, siblings, n=3, cutoff=0.6):
            if plausible(path.parent / close):
                return path.parent / close
    return None


def _broad_folders() -> set[Path]:
    """Folders too broad to search below for a suggestion: what is there is unrelated."""
    folders = {Path(tempfile.gettempdir()), Path.home()}
    return {p.absolute() for p in folders} | {p.resolve() for p in folders} | {Path("/")}


def _looks_like_root(folder: Path, name: str) -> bool:
    return (folder / name).is_dir() or (folder.name == name and _has_splits(folder))


def subdirs(folder: Path) -> list[Path]:
    """The visible sub-folders of ``folder``, sorted; none when it cannot be listed."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def present_subsets(root: str | Path) -> dict[str, Path]:
    """The subsets found at ``root``: ``{subset: folder holding Train/Val/Test}``.

    A bare folder with ``Train``/``Val``/``Test`` (no subset name) counts once: as the
    infection subset if it has any ``infection masks`` folder, else as the lung subset.
    """
    found: dict[str, Path] = {}
    for subset in SUBSETS:
        try:
            found[subset] = find_subset_dir(root, subset)
        except FileNotFoundError:
            pass
    if len(found) == 2 and found["infection"] == found["lung"]:
        base = found["infection"]
        has_infection = any(base.glob(f"*/*/{INFECTION_MASKS}"))
        del found["lung" if has_infection else "infection"]
    return found


def normalize_root(path: str | Path) -> Path:
    """The folder containing the subset folders, when ``path`` points inside one of them.

    Raises:
        FileNotFoundError: no subset of COVID-QU-Ex was found at ``path``.
    """
    path = Path(path).expanduser()
    errors = []
    for subset, name in SUBSETS.items():
        try:
            found = find_subset_dir(path, subset)
        except FileNotFoundError as err:
            errors.append(err)
            continue
        # Walk up from <...>/name/name (or <...>/name) to the folder that contains ``name``.
        top = found
        while top.name == name and top.parent != top:
            top = top.parent
        return top
    raise errors[0]


@dataclass(frozen=True)
class Problem:
    """One finding: ``level`` is ``"error"`` or ``"warning"``; ``path`` is the file concerned."""

    level: str
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"


class Findings:
    """``errors`` and ``warnings`` of a report that has a ``problems`` list (data and CT checks)."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


def list_entries(folder: Path) -> list[Path]:
    """Everything in ``folder``, sorted; nothing when it is not a folder."""
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _is_png(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == IMAGE_SUFFIX


def scan_class_folder(
    folder: Path, subset: str, split: str, cls: str
) -> tuple[list[Record], list[Problem]]:
    """Pair the images of one ``<split>/<class>`` folder with their masks (listing only).

    Returns:
        The records that have every mask, and the problems found (missing folders, images
        without masks, masks without images, unexpected files, an empty folder).
    """
    kinds = (IMAGES, *MASK_KINDS[subset])
    problems: list[Problem] = []
    for extra in list_entries(folder):
        if extra.name not in kinds:
            problems.append(Problem("warning", extra, "unexpected entry (ignored)"))
    names: dict[str, set[str]] = {}
    for kind in kinds:
        kind_dir = folder / kind
        if not kind_dir.is_dir():
            problems.append(Problem("error", kind_dir, f"missing {kind!r} folder"))
            names[kind] = set()
            continue
        names[kind] = set()
        for entry in list_entries(kind_dir):
            if _is_png(entry):
                names[kind].add(entry.name)
            else:
                problems.append(Problem("warning", entry, "unexpected file, not a PNG (ignored)"))
    images = names[IMAGES]
    if not any(names.values()):
        problems.append(
            Problem("error", folder, f"empty class folder ({split}/{cls}): no PNG files")
        )
        return [], problems
    for kind in kinds[1:]:
        if not (folder / kind).is_dir():
            continue
        for name in sorted(images - names[kind]):
            problems.append(
                Problem(
                    "error",
                    folder / IMAGES / name,
                    f"image without {kind[:-1]} (expected {folder / kind / name})",
                )
            )
        for name in sorted(names[kind] - images):
            problems.append(
                Problem(
                    "error",
                    folder / kind / name,
                    f"{kind[:-1]} without image (expected {folder / IMAGES / name})",
                )
            )
    complete = sorted((n for n in images if all(n in names[k] for k in kinds[1:])), key=natural_key)
    records = [
        Record(
            subset=subset,
            split=split,
            cls=cls,
            image=folder / IMAGES / n,
            lung_mask=folder / MASK_KINDS[subset][0] / n,
            infection_mask=(folder / MASK_KINDS[subset][1] / n) if subset == "infection" else None,
        )
        for n in complete
    ]
    return records, problems


def index_dataset(
    root: str | Path,
    subset: str = "infection",
    splits: str | tuple[str, ...] | list[str] | None = None,
    classes: str | tuple[str, ...] | list[str] | None = None,
) -> list[Record]:
    """List every image of ``subset`` with its masks, sorted by split, class, then file name.

    File names sort "naturally" (``covid_2.png`` before ``covid_10.png``).

    Args:
        root: dataset root at any level ``find_subset_dir`` accepts.
        subset: ``"infection"`` (lung + infection masks) or ``"lung"`` (lung masks only).
        splits: splits to index (default all of ``SPLITS``).
        classes: classes to index (default all of ``CLASSES``).

    Returns:
        Records in a deterministic order.

    Raises:
        FileNotFoundError: the root, a split or a class folder is missing.
        ValueError: an image without a mask, a mask without an image, or an empty folder;
            the message names every file concerned.
    """
    splits = _check_names(splits, SPLITS, "splits")
    classes = _check_names(classes, CLASSES, "classes")
    base = find_subset_dir(root, subset)
    records: list[Record] = []
    errors: list[str] = []
    ignored: list[str] = []
    for split in splits:
        for cls in classes:
            folder = base / split / cls
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"missing folder {folder} (split {split!r}, class {cls!r}); pass "
                    f"splits=/classes= to load only the folders you have"
                )
            found, problems = scan_class_folder(folder, subset, split, cls)
            records.extend(found)
            errors.extend(str(p) for p in problems if p.level == "error")
            ignored.extend(
                str(p.path)
                for p in problems
                if p.level == "warning" and p.path.name not in JUNK_NAMES
            )
    if ignored:  # nothing is dropped silently: say which files were not read
        shown = "\n  ".join(ignored[:10])
        more = f"\n  ... and {len(ignored) - 10} more" if len(ignored) > 10 else ""
        warnings.warn(f"ignored {len(ignored)} unexpected file(s):\n  {shown}{more}", stacklevel=2)
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ValueError(
            f"{len(errors)} problem(s) in {base} (run `labkit data check {root}` for a full "
            f"report):\n  {shown}{more}"
        )
    return records


def natural_key(name: str) -> tuple:
    """Sort key that orders numbers by value: ``covid_2.png`` before ``covid_10.png``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def relative_name(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` with forward slashes (stable across OSes for cache keys)."""
    return os.path.relpath(path, base).replace(os.sep, "/")
