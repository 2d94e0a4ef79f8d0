"""`labkit bench --labs`: a run's validation score (what settings are chosen by) and test Dice."""

from __future__ import annotations

import math
from dataclasses import replace

from labkit.bench.labs import dice_on_test, format_labs, lab_runs, train_run
from labkit.data import resolve_data
from labkit.runs import get_profile


def test_a_run_reports_the_val_score_it_is_chosen_by_and_can_leave_test_alone(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    smoke = get_profile("smoke")
    tiny = replace(smoke, phantom_n=24).for_lab("02")
    root = resolve_data("phantom", tiny.phantom_n, progress=False)
    run = lab_runs("02")[0]
    two = {"epochs": 2}
    chosen = train_run(run, tiny, root, seed=0, score_test=False, smoke=two)
    assert chosen["dice"] is None  # choosing settings never looks at the test images
    assert chosen["monitor"] == "val_dice" and chosen["epochs"] == 2
    assert 0.0 <= chosen["val"] <= 1.0 or math.isnan(chosen["val"])
    # the same seed trains the same model: scoring its test images afterwards (what
    # select_smoke does for the chosen recipe) gives what a run with test scoring gives
    scored = train_run(run, tiny, root, seed=0, smoke=two)
    assert scored["val"] == chosen["val"]
    assert dice_on_test(run, tiny, root, chosen["model"], smoke=two) == scored["dice"]
    table = format_labs({
        "profile": "smoke", "threads": 1, "seeds": [0],
        "labs": {"02": {"runs": [{k: v for k, v in scored.items() if k != "model"}],
                        "whole_lung_dice": 0.264}},
    })  # fmt: skip
    assert f"val_dice {scored['val']:.3f}-{scored['val']:.3f}" in table
