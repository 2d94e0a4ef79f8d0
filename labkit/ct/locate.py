"""Where lab 07's CT data is: a path > ``LABKIT_CT_DATA`` > kagglehub cache > (Colab) a
download > the phantom CT set, generated once into the labkit cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from labkit.ct.layout import find_ct_root
from labkit.ct.phantom import PHANTOM_MARKER, PHANTOM_VERSION, make_ct_phantom
from labkit.data.download import (
    DownloadError,
    kaggle_credentials,
    kaggle_reachable,
    use_colab_secrets,
)
from labkit.data.locate import cache_dir

CT_ENV_VAR = "LABKIT_CT_DATA"
CT_KAGGLE_HANDLE = "andrewmvd/covid19-ct-scans"
CT_KAGGLE_URL = f"https://www.kaggle.com/datasets/{CT_KAGGLE_HANDLE}"
PHANTOM = "phantom"
PHANTOM_N = 20  # report 004's 20 subjects, so the 14/2/4 split is the report's


def ct_phantom_root(n: int = PHANTOM_N, seed: int = 0) -> Path:
    """The cache folder of the default CT phantom (``<cache>/ct-phantom-v2-n20-s0``)."""
    return cache_dir() / f"ct-phantom-v{PHANTOM_VERSION}-n{n}-s{seed}"


def ensure_ct_phantom(n: int = PHANTOM_N, seed: int = 0, progress: bool = True) -> Path:
    """Generate the CT phantom into the cache once (race-safe: temp folder, then rename)."""
    final = ct_phantom_root(n, seed)
    if (final / PHANTOM_MARKER).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        make_ct_phantom(tmp / "out", n=n, seed=seed, progress=progress)
        try:
            os.rename(tmp / "out", final)
        except OSError:
            if not (final / PHANTOM_MARKER).is_file():
                raise FileExistsError(
                    f"{final} exists but is not a complete CT phantom; delete it and try again"
                ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ct_manual_instructions(dest: Path | None = None) -> str:
    """How to get the CT set by hand (several lines)."""
    where = dest or Path.home() / "data" / "covid19-ct-scans"
    return (
        "Download it by hand instead:\n"
        f"  1. open {CT_KAGGLE_URL} (sign in) and click Download\n"
        f"  2. unzip it into {where}, so that '{where}/metadata.csv' exists\n"
        f"  3. export {CT_ENV_VAR}={where}   (or CT_DATA='{where}' / --ct-data {where})\n"
        f"  4. labkit data check {where}\n"
        "Until then lab 07 uses the synthetic phantom CT set."
    )


def download_ct(dest: str | Path | None = None, check_network: bool = True) -> Path:
    """Download the Kaggle "COVID-19 CT scans" set with kagglehub; return its CT root.

    Raises:
        DownloadError: offline, kagglehub missing, or the download failed; the message ends
            with the manual instructions.
    """
    dest = None if dest is None else Path(dest).expanduser()
    if check_network and not kaggle_reachable():
        raise DownloadError(f"cannot reach Kaggle (offline?).\n{ct_manual_instructions(dest)}")
    try:
        import kagglehub
    except ImportError as err:
        raise DownloadError(
            f"kagglehub is not installed (pip install kagglehub).\n{ct_manual_instructions(dest)}"
        ) from err
    use_colab_secrets()
    try:
        if dest is not None:
            dest.mkdir(parents=True, exist_ok=True)
            path = kagglehub.dataset_download(CT_KAGGLE_HANDLE, output_dir=str(dest))
        else:
            path = kagglehub.dataset_download(CT_KAGGLE_HANDLE)
    except Exception as err:  # network, credentials, disk: all end in the same advice
        reason = f"{type(err).__name__}: {str(err)[:200].rstrip('.')}"
        raise DownloadError(
            f"kagglehub could not download {CT_KAGGLE_HANDLE} ({reason}).\n"
            f"{ct_manual_instructions(dest)}"
        ) from err
    return find_ct_root(path)


def kagglehub_ct_cache() -> Path | None:
    """The newest CT download in the kagglehub cache, or ``None``."""
    base = os.environ.get("KAGGLEHUB_CACHE") or str(Path.home() / ".cache" / "kagglehub")
    versions = Path(base).expanduser() / "datasets" / CT_KAGGLE_HANDLE / "versions"
    if not versions.is_dir():
        return None
    found = sorted((p for p in versions.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return found[-1] if found else None


def resolve_ct_data(data: str | Path | None = None, progress: bool = True) -> tuple[Path, str]:
    """The CT tree lab 07 loads, and why that one.

    Args:
        data: a folder (the tree, or a folder up to 3 levels above it), ``"phantom"``,
            ``"kaggle"`` (download with kagglehub) or ``None``: ``$LABKIT_CT_DATA``, then
            the kagglehub cache, then (on Colab with Kaggle credentials) a download, then
            the phantom CT set.
        progress: progress bars while generating the phantom.

    Returns:
        ``(root, source)``; ``source`` is ``"argument"``, ``"LABKIT_CT_DATA"``,
        ``"kagglehub cache"``, ``"kaggle download"`` or ``"phantom"``.

    Raises:
        FileNotFoundError: a given folder holds no CT tree.
        DownloadError: ``"kaggle"`` and the download failed.
    """
    from labkit.device import on_colab

    if isinstance(data, str) and data.strip().lower() == PHANTOM:
        return ensure_ct_phantom(progress=progress), "phantom"
    if isinstance(data, str) and data.strip().lower() == "kaggle":
        return download_ct(), "kaggle download"
    if data is not None:
        return find_ct_root(data), "argument"
    if os.environ.get(CT_ENV_VAR):
        return find_ct_root(os.environ[CT_ENV_VAR]), CT_ENV_VAR
    cached = kagglehub_ct_cache()
    if cached is not None:
        return find_ct_root(cached), "kagglehub cache"
    if on_colab() and kaggle_credentials():
        try:
            return download_ct(), "kaggle download"
        except DownloadError as err:
            print(f"Could not download the CT set: {str(err).splitlines()[0]}")
    return ensure_ct_phantom(progress=progress), "phantom"


def is_ct_phantom(root: Path) -> bool:
    """Whether ``root`` is a phantom CT set (its generator leaves ``phantom.json``)."""
    return (Path(root) / PHANTOM_MARKER).is_file()
