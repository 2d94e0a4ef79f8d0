"""evaluate() against a numpy oracle on phantom PNGs, and the plots (real PNG files)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from labkit.data import BatchLoader, load_split
from labkit.data.phantom import make_phantom
from labkit.evaluation import EvalResult, evaluate, threshold_sweep
from labkit.models import build_model
from labkit.plots import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    error_overlay,
    plot_history,
    plot_threshold_sweep,
    plot_worst_cases,
    show_prediction,
)
from labkit.train import History

SIZE = 64


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A phantom PNG tree (60 images per subset) with a private decode cache."""
    base = tmp_path_factory.mktemp("phantom")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE", str(base / "cache"))
        yield make_phantom(base / "data", n=60, size=SIZE, progress=False)


@pytest.fixture(scope="module")
def test_split(root):
    return load_split(root, "Test", size=SIZE, progress=False)


def lung_predictor() -> nn.Module:
    """A real 1x1 conv on ``grey+lung`` input whose logit is +10 on the lung, -10 off it:
    it "predicts" the lung mask, so its scores have an exact numpy oracle."""
    conv = nn.Conv2d(2, 1, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 20.0]).view(1, 2, 1, 1))
        conv.bias.fill_(-10.0)
    return conv


def oracle(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per-image scores computed independently, the empty-truth policy written out."""
    tp, fp = np.sum(pred & truth), np.sum(pred & ~truth)
    fn, tn = np.sum(~pred & truth), np.sum(~pred & ~truth)
    if tp + fn == 0:
        return {"dice": math.nan, "iou": math.nan, "sensitivity": math.nan, "fp": fp > 0}
    return {
        "dice": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "sensitivity": tp / (tp + fn),
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "specificity": tn / (tn + fp),
        "fp": fp > 0,
    }


def test_per_image_rows_and_aggregates_match_the_oracle(test_split):
    data = test_split
    result = evaluate(lung_predictor(), data, split="test", inputs="grey+lung", progress=False)
    assert isinstance(result, EvalResult) and result.split == "Test"
    assert [r["name"] for r in result.rows] == data.names
    expected = [
        oracle(data.lung[i, 0].numpy() > 0, data.infection[i, 0].numpy() > 0)
        for i in range(len(data))
    ]
    for row, exp, cls in zip(result.rows, expected, data.classes):
        assert row["class"] == cls
        for key in ("dice", "iou", "sensitivity"):
            assert row[key] == pytest.approx(exp[key], nan_ok=True)
    covid = [e for e, c in zip(expected, data.classes) if c == "COVID-19"]
    assert result.covid["n_images"] == len(covid) == data.classes.count("COVID-19")
    assert result.covid["dice"] == pytest.approx(np.nanmean([e["dice"] for e in covid]))
    assert result.covid["precision"] == pytest.approx(np.mean([e["precision"] for e in covid]))
    # Non-COVID / Normal: empty truth, excluded from Dice; every image has lung pixels,
    # so every one is a false-positive image.
    assert result.all_images["n_excluded"] == len(data) - len(covid)
    assert result.all_images["dice"] == pytest.approx(result.covid["dice"])
    assert result.fp_image_rate == {"Non-COVID": 1.0, "Normal": 1.0}
    assert set(result.per_class) == {"COVID-19", "Non-COVID", "Normal"}


def test_empty_predictions_and_the_empty_score_policy(test_split):
    data = test_split
    silent = nn.Conv2d(1, 1, kernel_size=1)  # predicts nothing: logit -10 everywhere
    with torch.no_grad():
        silent.weight.zero_(), silent.bias.fill_(-10.0)
    default = evaluate(silent, data, progress=False)
    # an infected image with an empty prediction has precision 0 (labkit's convention)
    assert default.covid["dice"] == 0.0 and default.covid["precision"] == 0.0
    assert default.covid["n_scored_precision"] == default.covid["n_scored"]
    assert default.fp_image_rate == {"Non-COVID": 0.0, "Normal": 0.0}
    scored = evaluate(silent, data, empty_score=1.0, progress=False)
    n_covid = data.classes.count("COVID-19")
    # empty truth + empty prediction scores 1, so the all-image mean is the healthy share
    assert scored.all_images["dice"] == pytest.approx((len(data) - n_covid) / len(data))
    assert scored.covid["dice"] == 0.0 and "scores 1.0" in scored.policy


def test_a_dataset_root_is_loaded_at_the_size_asked(root, test_split):
    from_root = evaluate(lung_predictor(), root, split="test", size=SIZE, inputs="grey+lung",
                         progress=False)  # fmt: skip
    from_data = evaluate(lung_predictor(), test_split, inputs="grey+lung", progress=False)
    assert from_root.split == "Test" and len(from_root.rows) == len(test_split)
    for a, b in zip(from_root.rows, from_data.rows):
        assert a["name"] == b["name"] and (a["tp"], a["fp"], a["fn"]) == (b["tp"], b["fp"], b["fn"])


def test_to_dict_is_strict_json_and_table_lists_the_classes(test_split):
    result = evaluate(lung_predictor(), test_split, inputs="grey+lung", progress=False)
    d = result.to_dict()
    text = json.dumps(d, allow_nan=False)  # NaN became null
    assert json.loads(text)["split"] == "test"
    for key in ("dice", "iou", "sensitivity", "precision", "all_images", "per_class"):
        assert key in d
    assert d["false_positive_image_rate"] == {"Non-COVID": 1.0, "Normal": 1.0}
    table = result.table()
    for label in ("COVID-19", "Non-COVID", "Normal", "all images", "COVID pooled"):
        assert label in table
    assert "rows" in result.to_dict(rows=True) and len(result.worst(3)) == 3


def test_real_model_batch_loader_and_split_check(test_split):
    torch.manual_seed(0)
    model = build_model("unet", in_channels=3, base_width=4, depth=2)
    model.train()
    loader = BatchLoader(test_split, 5, shuffle=True, inputs="rgb")  # order must not matter
    result = evaluate(model, loader, progress=False)
    assert [r["index"] for r in result.rows] == list(range(len(test_split)))
    assert model.training  # evaluate restores the mode it found
    assert result.probabilities.shape == test_split.images.shape
    with pytest.raises(ValueError, match="the data given is the 'Test' split"):
        evaluate(model, test_split, split="val", inputs="rgb", progress=False)
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate(model, test_split, split="dev", progress=False)


def test_threshold_sweep_agrees_with_evaluate(test_split):
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, base_width=4, depth=2)
    result = evaluate(model, test_split, progress=False)
    sweep = threshold_sweep(result, thresholds=[0.3, 0.5, 0.7])
    at_half = evaluate(model, test_split, threshold=0.5, progress=False).covid["dice"]
    assert sweep["dice"][1] == pytest.approx(at_half, abs=2e-3)  # float16 storage
    assert len(sweep["iou"]) == 3
    with pytest.raises(ValueError, match="keep_predictions=True"):
        threshold_sweep(evaluate(model, test_split, keep_predictions=False, progress=False))


def test_threshold_sweep_sees_false_alarms_on_healthy_images():
    # by hand: one COVID-19 image found at both thresholds; one Normal image with a stray
    # pixel at 0.3 (a false alarm at threshold 0.25, none at 0.5); one clean Normal image
    probs = torch.tensor([[0.6, 0.2, 0, 0], [0.3, 0, 0, 0], [0, 0, 0, 0]]).view(3, 1, 2, 2)
    targets = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]).view(3, 1, 2, 2)
    rows = [{"class": "COVID-19"}, {"class": "Normal"}, {"class": "Normal"}]
    fake = SimpleNamespace(probabilities=probs, targets=targets, rows=rows, empty_score=None)
    sweep = threshold_sweep(fake, thresholds=[0.25, 0.5])
    assert sweep["dice"] == [1.0, 1.0]  # blind to the false alarm
    assert sweep["fp_image_rate"] == [0.5, 0.0]
    assert sweep["dice_all"] == [pytest.approx(2 / 3), 1.0]  # healthy: 1 if clean, else 0


def test_error_overlay_colours():
    image = np.full((2, 2), 0.5)
    truth = np.array([[1, 1], [0, 0]])
    pred = np.array([[1, 0], [1, 0]])
    rgb = error_overlay(image, truth, pred, alpha=1.0)
    assert np.allclose(rgb[0, 0], TP_COLOUR) and np.allclose(rgb[0, 1], FN_COLOUR)
    assert np.allclose(rgb[1, 0], FP_COLOUR) and np.allclose(rgb[1, 1], 0.5)
    with pytest.raises(ValueError, match="must match"):
        error_overlay(image, truth, np.zeros((3, 3)))


def test_plots_return_figures_and_write_pngs(test_split, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    history = History(
        epoch=[1, 2], train_loss=[0.9, 0.7], val_loss=[1.0, 0.8], val_dice=[0.2, math.nan],
        val_iou=[0.1, math.nan], lr=[1e-3, 1e-3], seconds=[1.0, 1.0], best_epoch=1,
    )  # fmt: skip
    result = evaluate(lung_predictor(), test_split, inputs="grey+lung", progress=False)
    i = test_split.classes.index("COVID-19")
    figures = {
        "curves": plot_history(history, path=tmp_path / "curves.png"),
        "prediction": show_prediction(
            test_split.images[i],
            test_split.infection[i],
            result.probabilities[i],
            path=tmp_path / "prediction.png",
        ),  # fmt: skip
        "sweep": plot_threshold_sweep(threshold_sweep(result), path=tmp_path / "sweep.png"),
        "worst": plot_worst_cases(result, k=2, path=tmp_path / "worst.png"),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        plt.close(fig)
    assert len(figures["worst"].axes) == 6  # 2 rows x (image, truth, prediction)


def test_table_says_when_no_healthy_image_can_show_a_false_positive(test_split):
    covid_only = test_split.filter("COVID-19")
    result = evaluate(lung_predictor(), covid_only, inputs="grey+lung", progress=False)
    assert result.fp_image_rate == {}
    last = result.table().splitlines()[-1]
    assert last == "false-positive image rate: n/a (no image with an empty mask in this split)"


def test_students_spell_it_lk_evaluate_and_old_notebooks_still_run(test_split):
    import labkit as lk

    assert lk.evaluate is evaluate and lk.evaluation.threshold_sweep is threshold_sweep
    # Notebooks written for labkit 0.1 call lk.evaluate.evaluate / lk.evaluate.threshold_sweep.
    old = lk.evaluate.evaluate(lung_predictor(), test_split, inputs="grey+lung", progress=False)
    assert old.covid["dice"] == lk.evaluate(lung_predictor(), test_split, inputs="grey+lung",
                                            progress=False).covid["dice"]  # fmt: skip
    assert lk.evaluate.threshold_sweep(old, [0.5])["dice"] == [old.covid["dice"]]
