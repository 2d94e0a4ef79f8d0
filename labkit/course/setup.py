"""The first cells of every lab notebook, and the results protocol of ``labkit course run``.

A generated notebook starts like this (``labkit build`` writes the install cell; the lab
source holds the other two)::

    # (generated) on Colab only: install labkit, keeping Colab's own torch
    import os
    if "COLAB_RELEASE_TAG" in os.environ:
        import torch
        import torchvision
        %pip install -q "labkit @ git+<REPO_URL>" "torch=={torch.__version__}" ...

    # %% tags=["parameters"]
    PROFILE = None   # "smoke" | "full" | None ($LABKIT_PROFILE, else smoke)
    DATA = None      # a path, "phantom", "kaggle" or None ($LABKIT_DATA, kagglehub cache, phantom)

    # %%
    import labkit as lk
    from labkit.course.setup import setup

    S = setup(lab="01", profile=PROFILE, data=DATA)

Why the install pins torch: pip leaves an installed package alone when it satisfies a
requirement, and labkit's ranges are loose, but a dependency's newer lower bound could still
make pip pull a 2 GB torch that does not match Colab's CUDA. Naming the installed versions
(``torch==2.x.y+cu12z``) makes pip keep them or fail with a clear conflict; it never swaps
them. The repository URL lives here only (``REPO_URL``); ``labkit build`` writes it into the
install cell and the "Open in Colab" badges.

Results protocol: a notebook reports each trained model with ``record_result(...)``. When
the environment variable ``LABKIT_RESULTS`` names a file (``labkit course run`` sets it), one
JSON object per call is appended to it; otherwise nothing is written. Metrics are fractions
in [0, 1] (or NaN).

This module imports neither torch nor labkit.data at import time (``labkit build`` uses it).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# PLACEHOLDER: the course's public repository. Change it here (and only here) when the
# course is published; then run `labkit build` to refresh the badges and install cells.
REPO_URL = "https://github.com/labkit-course/labkit"
REPO_BRANCH = "main"

RESULTS_ENV_VAR = "LABKIT_RESULTS"
METRIC_KEYS = ("dice", "iou", "sensitivity", "precision")
KAGGLE_HANDLE = "anasmohammedtahir/covidqu"

_INSTALL_CELL = """\
# Set-up, step 1 of 2. On Google Colab this installs labkit; elsewhere it does nothing.
# The torch/torchvision pins name the versions Colab already has, so pip never replaces them.
import os

if "COLAB_RELEASE_TAG" in os.environ:
    import torch
    import torchvision

    %pip install -q "labkit @ git+{repo}@{branch}" "torch=={{torch.__version__}}" "torchvision=={{torchvision.__version__}}\""""


def install_cell_source() -> str:
    """The Colab install cell that ``labkit build`` puts before a lab's first code cell."""
    return _INSTALL_CELL.format(repo=REPO_URL, branch=REPO_BRANCH)


def colab_url(path_in_repo: str) -> str:
    """Colab's address for a notebook of this repository, e.g. ``notebooks/01_x.ipynb``."""
    repo = REPO_URL.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{REPO_BRANCH}/{path_in_repo}"


# ---------------------------------------------------------------------------- set-up
@dataclass
class LabSetup:
    """What ``setup`` decided; notebooks read it as ``S.profile``, ``S.device``, ``S.data``.

    Attributes:
        lab: lab number, e.g. ``"01"``.
        profile: the run profile (``labkit.profiles.Profile``).
        device: the ``torch.device`` to train on.
        data: dataset root, or ``None`` for a lab that needs no data.
        data_source: why that data (``"argument"``, ``"LABKIT_DATA"``, ``"kagglehub
            cache"``, ``"kaggle download"``, ``"default"``).
        phantom: True when ``data`` is the synthetic phantom dataset.
        colab: True on Google Colab.
        seed: the seed every RNG was given.
    """

    lab: str
    profile: Any
    device: Any
    data: Path | None
    data_source: str
    phantom: bool
    colab: bool
    seed: int

    def record_result(self, **kwargs: Any) -> dict:
        """``record_result`` with this lab filled in."""
        kwargs.setdefault("lab", self.lab)
        return record_result(**kwargs)


_CURRENT: LabSetup | None = None  # the last setup() in this kernel, for record_result


def _rule(lines: list[str]) -> str:
    width = max(len(line) for line in lines) + 4
    bar = "=" * width
    return "\n".join([bar, *(f"  {line}" for line in lines), bar])


def _kaggle_download() -> Path:
    """Download COVID-QU-Ex into the kagglehub cache (needs a network and Kaggle login)."""
    try:
        import kagglehub
    except ImportError as err:
        raise ImportError(
            "DATA='kaggle' needs the kagglehub package: pip install kagglehub"
        ) from err
    try:
        return Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as err:
        raise RuntimeError(
            f"could not download COVID-QU-Ex ({KAGGLE_HANDLE}) with kagglehub: "
            f"{type(err).__name__}: {str(err)[:200].rstrip('.')}. This needs a network and Kaggle "
            "credentials (KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json); or set DATA "
            "to a local copy of the dataset."
        ) from err


def _resolve(data: Any, profile: Any, colab: bool) -> tuple[Path, str, bool]:
    """(root, source, phantom) for the DATA parameter; see ``setup``."""
    from labkit.data import resolve_data
    from labkit.data.locate import PHANTOM, locate_data

    if isinstance(data, str) and data.strip().lower() == "kaggle":
        _kaggle_download()
        return resolve_data(None, profile=profile), "kaggle download", False
    where, source = locate_data(data)
    if where == PHANTOM and source == "default" and colab:
        # On Colab, try the download before settling for phantom data.
        try:
            _kaggle_download()
            return resolve_data(None, profile=profile), "kaggle download", False
        except Exception as err:  # no credentials, no network: phantom, and say why
            print(f"Could not download COVID-QU-Ex with kagglehub ({type(err).__name__}: {err})")
    root = resolve_data(data, profile=profile)
    # A path may point at a phantom dataset too: its generator leaves phantom.json behind.
    return root, source, where == PHANTOM or (root / "phantom.json").is_file()


def setup(
    lab: str,
    profile: Any = None,
    data: Any = None,
    device: Any = None,
    seed: int = 0,
    needs_data: bool = True,
) -> LabSetup:
    """Set a lab up: profile, device, data, seeds; print a short banner.

    Args:
        lab: lab number, e.g. ``"01"``.
        profile: ``"smoke"``, ``"full"`` or ``None`` (``LABKIT_PROFILE``, else smoke).
        data: a dataset path, ``"phantom"``, ``"kaggle"`` (download with kagglehub) or
            ``None`` (``LABKIT_DATA``, then the kagglehub cache, on Colab a kagglehub
            download, then phantom data with a banner saying so).
        device: ``"cuda"``, ``"cpu"``, ... or ``None`` for the best available.
        seed: seeds Python, NumPy and torch.
        needs_data: False for a lab that loads no dataset.

    Returns:
        A ``LabSetup``.
    """
    global _CURRENT
    from labkit.device import on_colab, pick_device, seed_everything
    from labkit.profiles import get_profile

    lab = str(lab)
    prof = get_profile(profile).for_lab(lab)  # the lab's own sizes (labkit.profiles)
    colab = on_colab()
    dev = pick_device(device)
    seed_everything(seed)
    root, source, phantom = (None, "not used by this lab", False)
    if needs_data:
        root, source, phantom = _resolve(data, prof, colab)

    print(f"labkit lab {lab} | profile: {prof.name} ({prof.description})")
    print(f"device: {dev} | data: {root if root is not None else '-'} ({source}) | seed {seed}")
    if colab and dev.type != "cuda":
        print(
            _rule(
                [
                    "NO GPU: this Colab runtime is CPU-only.",
                    "Runtime > Change runtime type > GPU (e.g. T4), then Runtime > Run all.",
                    "The smoke profile still runs on CPU; the full profile would take hours.",
                ]
            )
        )
    elif prof.name == "full" and dev.type == "cpu":
        print("Note: the full profile on a CPU is very slow; consider PROFILE = 'smoke'.")
    if phantom:
        print(
            _rule(
                [
                    "PHANTOM DATA: synthetic chest X-rays, not COVID-QU-Ex.",
                    "Results are NOT comparable with the reports' figures.",
                    "Real data: set DATA = '/path/to/covidqu' or $LABKIT_DATA,",
                    "or DATA = 'kaggle' with Kaggle credentials.",
                ]
            )
        )
    _CURRENT = LabSetup(
        lab=lab,
        profile=prof,
        device=dev,
        data=root,
        data_source=source,
        phantom=phantom,
        colab=colab,
        seed=seed,
    )
    return _CURRENT


# ---------------------------------------------------------------------------- results
def _metric(metrics: Any, key: str) -> float | None:
    """``metrics[key]`` (a mapping) or ``metrics.key`` (an object); None when absent."""
    if metrics is None:
        return None
    value = metrics.get(key) if isinstance(metrics, Mapping) else getattr(metrics, key, None)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metrics[{key!r}] must be a number, got {value!r}") from None
    if not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise ValueError(
            f"metrics[{key!r}] = {value} is outside [0, 1]; pass fractions, not percent"
        )
    return value


def record_result(
    model: str,
    loss: str,
    metrics: Any,
    train_seconds: float | None = None,
    lab: str | None = None,
    report: str | Mapping | None = None,
    notes: str = "",
) -> dict:
    """Report one trained model to ``labkit course run`` (no-op outside it).

    Args:
        model: a short model name, e.g. ``"unet3"`` or ``"resunet"``.
        loss: the training loss, e.g. ``"bce"``.
        metrics: a mapping (or object with attributes) with ``dice``, ``iou``,
            ``sensitivity``, ``precision`` as fractions in [0, 1]; missing ones are blank.
        train_seconds: wall time of training.
        lab: lab number; default: the one given to ``setup``.
        report: the report's comparable figure: a key of ``labkit.reports.REPORT_FIGURES``
            for this lab, or a mapping such as ``{"source": "report 000", "iou": 0.634}``.
        notes: free text for the results table.

    Returns:
        The row as a dict (also appended as one JSON line to ``$LABKIT_RESULTS``).
    """
    if not model or not isinstance(model, str):
        raise ValueError(f"record_result: model must be a non-empty string, got {model!r}")
    if lab is None:
        if _CURRENT is None:
            raise ValueError("record_result: pass lab='NN' or call setup(lab=...) first")
        lab = _CURRENT.lab
    row = {
        "lab": str(lab),
        "model": model,
        "loss": str(loss),
        **{key: _metric(metrics, key) for key in METRIC_KEYS},
        "train_seconds": None if train_seconds is None else float(train_seconds),
        "report": report if report is None or isinstance(report, str) else dict(report),
        "notes": notes,
        "profile": _CURRENT.profile.name if _CURRENT else None,
        "phantom": _CURRENT.phantom if _CURRENT else None,
        "device": str(_CURRENT.device) if _CURRENT else None,
    }
    target = os.environ.get(RESULTS_ENV_VAR)
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
    return row
