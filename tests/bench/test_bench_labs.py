"""`labkit bench --labs`: a run's validation score (what settings are chosen by) and test Dice."""

from __future__ import annotations

import math
from dataclasses import replace

from labkit.bench.labs import LAB_RUNS, dice_on_test, format_labs, train_run
from labkit.data import resolve_data
from labkit.profiles import get_profile


def test_a_run_reports_the_val_score_it_is_chosen_by_and_can_leave_test_alone(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    smoke = get_profile("smoke")
    tiny = replace(smoke, phantom_n=24, lab_changes={"02": {"epochs": 2}}).for_lab("02")
    root = resolve_data("phantom", profile=tiny, progress=False)
    run = LAB_RUNS["02"][0]
    chosen = train_run(run, tiny, root, seed=0, score_test=False)
    assert chosen["dice"] is None  # choosing settings never looks at the test images
    assert chosen["monitor"] == "val_dice" and chosen["epochs"] == 2
    assert 0.0 <= chosen["val"] <= 1.0 or math.isnan(chosen["val"])
    # the same seed trains the same model: scoring its test images afterwards (what
    # select_smoke does for the chosen recipe) gives what a run with test scoring gives
    scored = train_run(run, tiny, root, seed=0)
    assert scored["val"] == chosen["val"]
    assert dice_on_test(run, tiny, root, chosen["model"]) == scored["dice"]
    table = format_labs({
        "profile": "smoke", "threads": 1, "seeds": [0],
        "labs": {"02": {"runs": [{k: v for k, v in scored.items() if k != "model"}],
                        "whole_lung_dice": 0.264}},
    })  # fmt: skip
    assert f"val_dice {scored['val']:.3f}-{scored['val']:.3f}" in table
