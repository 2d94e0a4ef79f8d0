"""The one-command smoke run learns: `labkit train --model unet` on the phantom data beats
the trivial "infection = the whole lung" prediction on the COVID-19 test images."""

from __future__ import annotations

import json

import pytest

from labkit.cli import main as cli
from labkit.data import load_split, resolve_data
from labkit.metrics import confusion_counts, dice
from labkit.runs import get_profile


@pytest.mark.slow
def test_smoke_unet_beats_predicting_the_whole_lung(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))  # a fresh phantom, as a student's
    monkeypatch.setenv("MPLBACKEND", "Agg")
    smoke = get_profile("smoke")
    out = tmp_path / "run"
    # Every smoke setting but the time budget, lifted so that a busy machine trains the same
    # epochs (and gets the same result) as an idle one.
    argv = ["train", "--model", "unet", "--data", "phantom", "--profile", "smoke"]
    assert cli([*argv, "--out", str(out), "--time-budget", "60", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == smoke.cli_train.epochs and metrics["departures"]

    # The trivial baseline on the same test images, from their masks: every lung pixel is
    # called infected (an all-background prediction would score 0).
    root = resolve_data("phantom", smoke.phantom_n, progress=False)
    test = load_split(root, "Test", size=smoke.size(), limit=smoke.images(), progress=False)
    covid = test.filter(classes=["COVID-19"])
    assert metrics["n_images"] == len(covid) > 0  # the headline is COVID-19's per-image mean
    whole_lung = dice(*confusion_counts(covid.lung, covid.infection))
    assert not whole_lung.isnan().any()  # every COVID-19 phantom image has infection
    trivial = whole_lung.mean().item()
    assert 0 < trivial < 1

    # Clearly better than trivial: past the whole lung by at least half of its score.
    assert metrics["dice"] > 1.5 * trivial, (metrics["dice"], trivial)
