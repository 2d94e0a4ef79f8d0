"""The first cells of every lab notebook, and the results protocol of ``labkit course run``.

A generated notebook starts like this (``labkit build`` writes the install cell from
``labkit.course.colab``; the lab source holds the other two)::

    # (generated) on Colab only: install labkit, keeping Colab's own torch, numpy, ipywidgets
    import os
    if "COLAB_RELEASE_TAG" in os.environ:
        ...  # pip install labkit with Colab's versions pinned, then check nothing changed

    # %% tags=["parameters"]
    PROFILE = None   # "smoke" | "full" | None ($LABKIT_PROFILE, else smoke)
    DATA = None      # a path, "phantom", "kaggle" or None ($LABKIT_DATA, kagglehub cache, phantom)

    # %%
    import labkit as lk

    S = lk.setup(lab="01", profile=PROFILE, data=DATA)

Data on Colab: with ``DATA = None`` and nothing in ``$LABKIT_DATA`` or the kagglehub cache,
``setup`` downloads COVID-QU-Ex with Colab's preinstalled kagglehub when the student has Kaggle
credentials (``labkit.data.download.kaggle_credentials``); otherwise it uses phantom data and
its banner says why and how to get the real set.

Results protocol: a notebook reports each trained model with ``record_result(...)``. When
the environment variable ``LABKIT_RESULTS`` names a file (``labkit course run`` sets it), one
JSON object per call is appended to it; otherwise nothing is written. Metrics are fractions
in [0, 1] (or NaN).

This module imports neither torch nor labkit.data at import time (``labkit course run``
imports it).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_ENV_VAR = "LABKIT_RESULTS"


# ---------------------------------------------------------------------------- set-up
@dataclass
class LabSetup:
    """What ``setup`` decided; notebooks read it as ``S.profile``, ``S.device``, ``S.data``.

    Attributes:
        lab: lab number, e.g. ``"01"``.
        profile: the run profile (``labkit.runs.Profile``).
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

    def estimate(self) -> str:
        """An ESTIMATE of this lab's training time on this device, in words (the same
        figure ``labkit course plan`` prints for this lab, profile and device)."""
        from labkit.course.plan import lab_estimate  # FLOP counting: only when asked

        return lab_estimate(self.profile, self.device)


_CURRENT: LabSetup | None = None  # the last setup() in this kernel, for record_result


def _rule(lines: list[str]) -> str:
    width = max(len(line) for line in lines) + 4
    bar = "=" * width
    return "\n".join([bar, *(f"  {line}" for line in lines), bar])


def _resolve(data: Any, profile: Any, colab: bool) -> tuple[Path, str, bool, str | None]:
    """(root, source, phantom, why phantom) for the DATA parameter; see ``setup``."""
    from labkit.data.download import DownloadError, download_covidqu, kaggle_credentials
    from labkit.data.locate import PHANTOM, locate_data, resolve_data

    if isinstance(data, str) and data.strip().lower() == "kaggle":
        return resolve_data(download_covidqu(), profile.phantom_n), "kaggle download", False, None
    where, source = locate_data(data)
    why = None
    if where == PHANTOM and source == "default" and colab:
        # On Colab, download with the preinstalled kagglehub when the student has credentials.
        credentials = kaggle_credentials()
        if credentials is None:
            why = "no Kaggle credentials found"
        else:
            try:
                root = resolve_data(download_covidqu(), profile.phantom_n)
                return root, f"kaggle download, credentials from {credentials}", False, None
            except DownloadError as err:  # network or account trouble: phantom, and say why
                why = str(err).splitlines()[0].rstrip(".")
    root = resolve_data(data, profile.phantom_n)
    # A path may point at a phantom dataset too: its generator leaves phantom.json behind.
    phantom = where == PHANTOM or (root / "phantom.json").is_file()
    return root, source, phantom, why


def phantom_banner(why: str | None = None) -> list[str]:
    """The lines of the banner that says a lab runs on phantom data, and how to get real data.

    Args:
        why: the reason there is no real data (e.g. "no Kaggle credentials found"), or None.
    """
    from labkit.data.download import KAGGLE_URL

    lines = [
        "PHANTOM DATA: synthetic chest X-rays, not COVID-QU-Ex.",
        "Results are NOT comparable with the reports' figures.",
    ]
    if why:
        lines.append(f"Why: {why}.")
    return [
        *lines,
        "Real data, any of:",
        "- on Colab: add the secret KAGGLE_API_TOKEN (key icon, left bar; the token comes",
        "  from kaggle.com > Settings > API; older keys: the secrets KAGGLE_USERNAME and",
        "  KAGGLE_KEY), give this notebook access, then run all cells again;",
        "- DATA = 'kaggle' with KAGGLE_API_TOKEN in the environment or ~/.kaggle/kaggle.json;",
        f"- DATA = '/path/to/covidqu' or $LABKIT_DATA (download: {KAGGLE_URL}).",
    ]


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
    from labkit.runs import get_profile

    lab = str(lab)
    prof = get_profile(profile).for_lab(lab)  # the lab's own sizes (labkit.runs)
    colab = on_colab()
    dev = pick_device(device)
    seed_everything(seed)
    root, source, phantom, why = (None, "not used by this lab", False, None)
    if needs_data:
        root, source, phantom, why = _resolve(data, prof, colab)

    print(f"labkit lab {lab} | profile: {prof.name} ({prof.description})")
    what = "PHANTOM (synthetic)" if phantom else "COVID-QU-Ex"
    used = f"{what} at {root} (chosen by: {source})" if root is not None else "-"
    print(f"device: {dev} | data: {used} | seed {seed}")
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
        print(_rule(phantom_banner(why)))
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
    phantom: bool | None = None,
    history: Any = None,
) -> dict:
    """Report one trained model to ``labkit course run`` (no-op outside it).

    Args:
        model: a short model name, e.g. ``"unet3"`` or ``"resunet"``.
        loss: the training loss, e.g. ``"bce"``.
        metrics: a mapping (or object with attributes) with ``dice``, ``iou``,
            ``sensitivity``, ``precision`` as fractions in [0, 1]; missing ones are blank.
        train_seconds: wall time of training.
        lab: lab number; default: the one given to ``setup``.
        report: the report's comparable figure: the key of one of this lab's
            ``labkit.runs.LABS[lab].figures``, or a mapping such as
            ``{"source": "report 000", "iou": 0.634}``.
        notes: free text for the results table.
        phantom: whether the model was trained and scored on phantom data; default: what
            ``setup`` found for ``DATA`` (lab 07 passes its CT data's, which ``DATA`` is not).
        history: the model's training history (``fit``'s or ``train_ct``'s): a run that a
            safety limit cut is marked ``cut`` ("CUT at 6 of 10 epochs") in every table.

    Returns:
        The row as a dict (also appended as one JSON line to ``$LABKIT_RESULTS``).
    """
    from labkit.metrics import SCORE_NAMES  # here: `labkit course run` imports this module
    from labkit.runs import cut_text

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
        **{key: _metric(metrics, key) for key in SCORE_NAMES},
        "train_seconds": None if train_seconds is None else float(train_seconds),
        "report": report if report is None or isinstance(report, str) else dict(report),
        "notes": notes,
        "cut": cut_text(history) if history is not None else "",
        "profile": _CURRENT.profile.name if _CURRENT else None,
        "phantom": phantom if phantom is not None else (_CURRENT.phantom if _CURRENT else None),
        "device": str(_CURRENT.device) if _CURRENT else None,
    }
    target = os.environ.get(RESULTS_ENV_VAR)
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
    return row
