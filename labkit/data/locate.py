"""Where the data is: explicit path > ``LABKIT_DATA`` > kagglehub cache > phantom.

``resolve_data("phantom")`` generates the synthetic dataset once into the labkit cache
(``LABKIT_CACHE`` or ``~/.cache/labkit``) and reuses it afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from labkit.data.download import KAGGLE_HANDLE
from labkit.data.layout import SUBSETS, find_subset_dir, nearest_match, normalize_root, subdirs

DATA_ENV_VAR = "LABKIT_DATA"
CACHE_ENV_VAR = "LABKIT_CACHE"
PHANTOM = "phantom"
PHANTOM_SEED = 0
PHANTOM_N = 240  # images per subset when no run profile says (the smoke profile's phantom_n)
PHANTOM_SIZE = 256  # the real images' size; the loader resizes to the profile's size


def cache_dir() -> Path:
    """labkit's cache folder: ``$LABKIT_CACHE`` or ``~/.cache/labkit`` (not created here)."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "labkit"


def kagglehub_candidates() -> list[Path]:
    """Version folders of the dataset in the kagglehub cache, newest first."""
    base = os.environ.get("KAGGLEHUB_CACHE") or str(Path.home() / ".cache" / "kagglehub")
    versions = Path(base).expanduser() / "datasets" / KAGGLE_HANDLE / "versions"
    if not versions.is_dir():
        return []

    def number(p: Path) -> int:
        return int(p.name) if p.name.isdigit() else -1

    return sorted((p for p in versions.iterdir() if p.is_dir()), key=number, reverse=True)


def _find_root_below(folder: Path, depth: int = 3) -> Path | None:
    """A dataset root at or up to ``depth`` levels below ``folder``, else ``None``."""
    frontier = [folder]
    for _ in range(depth + 1):
        for f in frontier:
            if any((f / name).is_dir() for name in SUBSETS.values()):
                return f
        frontier = [c for f in frontier for c in subdirs(f)]
    return None


def locate_data(data: str | Path | None = None) -> tuple[str | Path, str]:
    """Decide where the data comes from, without generating anything.

    Returns:
        ``(where, source)``: ``where`` is a ``Path`` or the string ``"phantom"``; ``source``
        says why (``"argument"``, ``"LABKIT_DATA"``, ``"kagglehub cache"``, ``"default"``).
    """
    if data is not None:
        source = "argument"
    elif os.environ.get(DATA_ENV_VAR):
        data, source = os.environ[DATA_ENV_VAR], DATA_ENV_VAR
    else:
        for version in kagglehub_candidates():
            root = _find_root_below(version)
            if root is not None:
                return root, "kagglehub cache"
        return PHANTOM, "default"
    if str(data).strip().lower() == PHANTOM:
        return PHANTOM, source
    return Path(data).expanduser(), source


def phantom_root(n: int, seed: int = PHANTOM_SEED, size: int = PHANTOM_SIZE) -> Path:
    """Cache folder of the phantom dataset with these parameters."""
    return cache_dir() / f"phantom-n{n}-s{seed}-px{size}"


def ensure_phantom(
    n: int, seed: int = PHANTOM_SEED, size: int = PHANTOM_SIZE, progress: bool = True
) -> Path:
    """Generate the phantom dataset into the cache once; later calls return the same folder.

    Safe when two processes race: each generates into its own temporary folder and renames it
    into place; the loser deletes its copy and uses the winner's.
    """
    final = phantom_root(n, seed, size)
    if (final / "phantom.json").is_file():
        return final
    from labkit.data.phantom import make_phantom

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        make_phantom(tmp / "out", n=n, seed=seed, size=size, progress=progress)
        try:
            os.rename(tmp / "out", final)
        except OSError:
            if not (final / "phantom.json").is_file():  # not a lost race: a real failure
                raise FileExistsError(
                    f"{final} exists but is not a complete phantom dataset (no phantom.json); "
                    "delete it and try again"
                ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_data(
    data: str | Path | None = None, phantom_n: int = PHANTOM_N, progress: bool = True
) -> Path:
    """The dataset root to load from.

    Args:
        data: a path (the folder containing the subsets, a subset folder, or its repeated
            inner folder), ``"phantom"``, or ``None`` for ``LABKIT_DATA``, then the kagglehub
            cache, then the phantom dataset.
        phantom_n: images per subset if the phantom data is generated (a run profile's
            ``phantom_n``).
        progress: show a progress bar if the phantom data has to be generated.

    Returns:
        The folder that contains the subset folders (or the single subset given).

    Raises:
        FileNotFoundError: the path does not hold COVID-QU-Ex data; the message says what was
            expected and suggests the nearest matching folder.
    """
    where, source = locate_data(data)
    if where == PHANTOM:
        return ensure_phantom(phantom_n, progress=progress)
    try:
        return normalize_root(where)
    except FileNotFoundError as err:
        if source == DATA_ENV_VAR:
            raise FileNotFoundError(f"{err} (the path came from ${DATA_ENV_VAR})") from err
        raise


def describe_data_location(data: str | None = None, phantom_n: int = PHANTOM_N) -> str:
    """One line for ``labkit info``: where data would be loaded from. Never raises."""
    try:
        where, source = locate_data(data)
        if where == PHANTOM:
            root = phantom_root(phantom_n)
            state = "ready" if (root / "phantom.json").is_file() else "generated on first use"
            return f"phantom ({source}; {state} in {root})"
        found = []
        for subset in SUBSETS:
            try:
                find_subset_dir(where, subset)
                found.append(subset)
            except FileNotFoundError:
                pass
        if found:
            return f"{where} ({source}; subsets: {', '.join(found)})"
        near = nearest_match(where)
        hint = f"; did you mean {near}?" if near else ""
        return f"{where} ({source}; NOT a COVID-QU-Ex folder{hint})"
    except Exception as err:  # labkit info must always print something
        return f"unknown ({type(err).__name__}: {err})"
