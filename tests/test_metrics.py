"""Metrics against segmentation_models_pytorch.metrics (an independent oracle) and by hand."""

from __future__ import annotations

import math

import pytest
import segmentation_models_pytorch as smp
import torch

from labkit import losses, metrics
from labkit.metrics import MetricAccumulator

NAN = math.nan


def same(a: float, b: float) -> bool:
    """Equal within 1e-9, with NaN == NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


def random_batch(seed: int, b: int = 6, channels: int = 1, size: int = 16):
    """Random logits and masks in which every image has some infection."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, channels, size, size, generator=g) * 2
    target = (torch.rand(b, 1, size, size, generator=g) > 0.7).float()
    target[:, :, 0, 0] = 1
    return logits, target


# --- the oracle: smp.metrics on images with non-empty truth --------------------------------


@pytest.mark.parametrize("seed, channels", [(0, 1), (1, 1), (2, 2)])
def test_counts_and_scores_match_smp(seed, channels):
    logits, target = random_batch(seed, channels=channels)
    probs = metrics.probabilities(logits)
    stats = smp.metrics.get_stats(probs, target.long(), mode="binary", threshold=0.5)
    ref = [s[:, 0] for s in stats]  # (B, 1) -> (B,)
    ours = metrics.confusion_counts(probs >= 0.5, target)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    assert ((ref[0] + ref[1]) > 0).all(), "setup: every image must have a prediction"
    oracle = {
        "dice": smp.metrics.f1_score,
        "iou": smp.metrics.iou_score,
        "sensitivity": smp.metrics.recall,
        "precision": smp.metrics.precision,
        "specificity": smp.metrics.specificity,
    }
    acc = MetricAccumulator()
    acc.update(logits[:2], target[:2])  # in two batches on purpose
    acc.update(logits[2:], target[2:])
    summary = acc.compute()
    scores = metrics.scores_from_counts(*ours)
    for name, fn in oracle.items():
        per_image = fn(*stats, reduction="none")[:, 0].double()
        torch.testing.assert_close(scores[name], per_image)
        imagewise = fn(*stats, reduction="micro-imagewise").item()
        assert summary[name] == pytest.approx(imagewise, rel=1e-6), name
        pooled = fn(*stats, reduction="micro").item()
        assert summary["pooled"][name] == pytest.approx(pooled, rel=1e-6), name
    assert summary["n_scored"] == 6 and summary["n_excluded"] == 0


def test_threshold_is_inclusive_like_smp():
    logits = torch.zeros(1, 1, 2, 2)  # probability exactly 0.5
    acc = MetricAccumulator(threshold=0.5)
    acc.update(logits, torch.ones(1, 1, 2, 2))
    assert acc.to_rows()[0]["tp"] == 4


# --- the empty-mask policy by hand --------------------------------------------------------

# 2x2 images: (truth, prediction) -> expected scores. s = empty_score.
CASES = {
    "empty/empty": ([0, 0, 0, 0], [0, 0, 0, 0]),
    "empty/predicted": ([0, 0, 0, 0], [1, 0, 0, 0]),
    "infected/empty": ([1, 0, 0, 0], [0, 0, 0, 0]),
    "infected/predicted": ([1, 1, 0, 0], [1, 0, 1, 0]),
}
EXPECTED = {  # dice, iou, sensitivity, precision, specificity; "s" = empty_score or NaN
    "empty/empty": ("s", "s", "s", "s", 1.0),
    "empty/predicted": ("0|nan", "0|nan", "0|nan", 0.0, 0.75),
    "infected/empty": (0.0, 0.0, 0.0, 0.0, 1.0),
    "infected/predicted": (0.5, 1 / 3, 0.5, 0.5, 0.5),
}


def expected_value(v, empty_score):
    if v == "s":
        return NAN if empty_score is None else empty_score
    if v == "0|nan":
        return NAN if empty_score is None else 0.0
    return v


def batch_of(*names):
    truth = torch.tensor([CASES[n][0] for n in names], dtype=torch.float32).view(-1, 1, 2, 2)
    pred = torch.tensor([CASES[n][1] for n in names], dtype=torch.float32).view(-1, 1, 2, 2)
    return pred, truth


@pytest.mark.parametrize("empty_score", [None, 1.0, 0.7])
@pytest.mark.parametrize("case", list(CASES))
def test_empty_mask_policy_per_image(case, empty_score):
    pred, truth = batch_of(case)
    scores = metrics.scores_from_counts(*metrics.confusion_counts(pred, truth), empty_score)
    for name, v in zip(metrics.SCORES, EXPECTED[case]):
        assert same(scores[name].item(), expected_value(v, empty_score)), (name, scores[name])


def test_specificity_is_nan_without_negatives():
    ones = torch.ones(1, 1, 2, 2)
    scores = metrics.scores_from_counts(*metrics.confusion_counts(ones, ones))
    assert math.isnan(scores["specificity"].item()) and scores["dice"].item() == 1.0


@pytest.mark.parametrize(
    "empty_score, dice, iou, n_scored, precision, n_prec",
    [
        # precision: healthy image with a false alarm 0, infected image missed 0 (labkit's
        # convention), infected image half right 0.5; the healthy empty/empty image is NaN
        (None, (0 + 0.5) / 2, (0 + 1 / 3) / 2, 2, (0 + 0 + 0.5) / 3, 3),
        (1.0, (1 + 0 + 0 + 0.5) / 4, (1 + 0 + 0 + 1 / 3) / 4, 4, (1 + 0 + 0 + 0.5) / 4, 4),
    ],
)
def test_accumulator_means_counts_pooled_and_fp_rate(
    empty_score, dice, iou, n_scored, precision, n_prec
):
    pred, truth = batch_of(*CASES)
    classes = ["Normal", "Non-COVID", "COVID-19", "COVID-19"]
    acc = MetricAccumulator(empty_score=empty_score)
    acc.update(pred, truth, classes=classes, names=list("abcd"), from_logits=False)
    s = acc.compute()
    assert (s["n_images"], s["n_scored"], s["n_excluded"]) == (4, n_scored, 4 - n_scored)
    assert s["dice"] == pytest.approx(dice) and s["iou"] == pytest.approx(iou)
    assert s["precision"] == pytest.approx(precision) and s["n_scored_precision"] == n_prec
    assert s["specificity"] == pytest.approx((1 + 0.75 + 1 + 0.5) / 4)
    # pooled: tp 1, fp 2, fn 2, tn 11 -- whatever the policy
    p = s["pooled"]
    assert (p["tp"], p["fp"], p["fn"], p["tn"]) == (1, 2, 2, 11)
    assert p["dice"] == pytest.approx(2 / 6) and p["iou"] == pytest.approx(1 / 5)
    assert p["sensitivity"] == pytest.approx(1 / 3) and p["precision"] == pytest.approx(1 / 3)
    # two empty-truth images, one with a predicted pixel
    assert (s["n_empty_truth"], s["n_fp_images"], s["fp_image_rate"]) == (2, 1, 0.5)
    covid = acc.compute(classes=["COVID-19"])
    assert covid["n_images"] == 2 and covid["dice"] == pytest.approx(0.25)
    assert math.isnan(covid["fp_image_rate"])
    assert s["per_class"]["Normal"]["fp_image_rate"] == 0.0
    assert s["per_class"]["Non-COVID"]["fp_image_rate"] == 1.0
    assert s["per_class"]["COVID-19"]["dice"] == covid["dice"]
    assert set(s["per_class"]) == {"COVID-19", "Non-COVID", "Normal"}
    assert acc.compute(classes="Nope")["n_images"] == 0
    rows = acc.to_rows()
    assert [r["name"] for r in rows] == list("abcd") and rows[0]["truth_empty"]
    assert rows[1]["pred_empty"] is False and same(
        rows[0]["dice"], expected_value("s", empty_score)
    )


def test_predicting_nothing_does_not_raise_mean_precision():
    # by hand: 10 infected 2x2 images (one infected pixel each); perfect on the first, an
    # empty prediction on the other 9. Dice 1 and precision 1 on the first, 0 and 0 on the rest.
    truth = torch.zeros(10, 1, 2, 2)
    truth[:, 0, 0, 0] = 1
    pred = torch.zeros_like(truth)
    pred[0] = truth[0]
    acc = MetricAccumulator()
    acc.update(pred, truth, classes="COVID-19", from_logits=False)
    s = acc.compute()
    assert s["dice"] == pytest.approx(0.1) and s["precision"] == pytest.approx(0.1)
    assert s["n_scored"] == s["n_scored_precision"] == 10
    # pooled: tp 1, fp 0, fn 9 -> every predicted pixel is right, 1 infected pixel in 10 found
    assert s["pooled"]["precision"] == 1.0 and s["pooled"]["sensitivity"] == pytest.approx(0.1)


def test_pooled_precision_is_zero_when_nothing_is_predicted_on_infected_images():
    truth = torch.tensor([1.0, 0, 0, 0]).view(1, 1, 2, 2)
    acc = MetricAccumulator()
    acc.update(torch.zeros_like(truth), truth, from_logits=False)
    assert acc.compute()["pooled"]["precision"] == 0.0


# --- MAE and RMSE -------------------------------------------------------------------------


def test_mae_and_rmse_are_the_true_definitions():
    probs = torch.tensor([0.1, 0.9, 0.5, 0.5]).view(1, 1, 2, 2)
    truth = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 2, 2)
    assert metrics.mae(probs, truth).item() == pytest.approx(0.5)
    assert metrics.rmse(probs, truth).item() == pytest.approx(math.sqrt(0.33))
    # report 001's "RMSE": the mean of sqrt of squared differences -- which is the MAE
    report_001 = ((probs - truth) ** 2).sqrt().mean()
    assert report_001.item() == pytest.approx(metrics.mae(probs, truth).item())
    acc = MetricAccumulator()
    acc.update(probs, truth, from_logits=False)
    assert acc.compute()["mae"] == pytest.approx(0.5)
    assert acc.compute()["rmse"] == pytest.approx(math.sqrt(0.33))


# --- accumulation, shapes, probabilities --------------------------------------------------


@pytest.mark.parametrize("empty_score", [None, 1.0])
def test_accumulating_batches_equals_one_shot(empty_score):
    logits, target = random_batch(5, b=10)
    target[3:6] = 0  # some empty masks
    classes = ["COVID-19"] * 3 + ["Normal"] * 3 + ["COVID-19"] * 4
    one = MetricAccumulator(empty_score=empty_score)
    one.update(logits, target, classes=classes)
    many = MetricAccumulator(empty_score=empty_score)
    for lo, hi in [(0, 3), (3, 4), (4, 10)]:
        many.update(logits[lo:hi], target[lo:hi], classes=classes[lo:hi])
        assert many.compute()["n_images"] == hi  # a summary midway must not go stale

    def flat(d, prefix=""):
        for k, v in d.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)]

    a, b = dict(flat(one.compute())), dict(flat(many.compute()))
    assert a.keys() == b.keys() and all(same(float(a[k]), float(b[k])) for k in a)
    assert len(one) == len(many) == 10
    many.reset()
    assert len(many) == 0 and many.compute()["n_images"] == 0 and many.to_rows() == []


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 1, 5, 7), (2, 2, 6, 3)])
def test_shapes(shape):
    logits = torch.randn(shape)
    target = (torch.rand(shape[0], 1, *shape[2:]) > 0.5).float()
    probs = metrics.probabilities(logits)
    assert probs.shape == target.shape
    tp, fp, fn, tn = metrics.confusion_counts(probs >= 0.5, target)
    assert tp.shape == (shape[0],) and tp.dtype == torch.int64
    assert ((tp + fp + fn + tn) == shape[2] * shape[3]).all()
    assert metrics.mae(probs, target).shape == metrics.rmse(probs, target).shape == (shape[0],)


def test_probabilities_of_both_heads_and_deep_supervision_lists():
    logits = torch.randn(2, 2, 4, 4)
    z = losses.infection_logits(logits)
    torch.testing.assert_close(metrics.probabilities(logits), torch.sigmoid(z))
    one = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(metrics.probabilities([one, -one]), torch.sigmoid(one))
    assert metrics.probabilities(one.half()).dtype == torch.float32


def test_nanmean_counts_what_it_excludes():
    assert metrics.nanmean([1.0, NAN, 3.0]) == (2.0, 2, 1)
    mean, n, excluded = metrics.nanmean(torch.tensor([NAN, NAN]))
    assert math.isnan(mean) and (n, excluded) == (0, 2)


# --- errors -------------------------------------------------------------------------------


def test_bad_input_is_a_clear_value_error():
    acc = MetricAccumulator()
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="target shape .* does not match"):
        acc.update(x, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="255"):
        acc.update(x, torch.full((2, 1, 4, 4), 255, dtype=torch.uint8))
    with pytest.raises(ValueError, match="classes must be one value or one per image"):
        acc.update(x, torch.zeros(2, 1, 4, 4), classes=["COVID-19"])
    with pytest.raises(ValueError, match="from_logits=True"):
        acc.update(x * 10, torch.zeros(2, 1, 4, 4), from_logits=False)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        metrics.probabilities(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="empty list"):
        metrics.probabilities([])
    with pytest.raises(ValueError, match="pred must hold only 0 and 1"):
        metrics.confusion_counts(torch.rand(1, 1, 2, 2) * 0.9 + 0.05, torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="threshold"):
        MetricAccumulator(threshold=1.5)
    with pytest.raises(ValueError, match="empty_score"):
        MetricAccumulator(empty_score=2.0)
    assert len(acc) == 0, "a rejected batch must not be half-recorded"


def test_nan_output_is_reported_not_counted_as_negative():
    acc = MetricAccumulator()
    logits = torch.randn(2, 1, 4, 4)
    logits[1, 0, 0, 0] = NAN
    acc.update(logits, torch.zeros(2, 1, 4, 4), names=["ok.png", "bad.png"])
    with pytest.raises(ValueError, match="bad.png"):
        acc.compute()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_cpu_results():
    logits, target = random_batch(7, channels=2)
    cpu, gpu = MetricAccumulator(), MetricAccumulator()
    cpu.update(logits, target)
    gpu.update(logits.cuda().half(), target.cuda().to(torch.uint8))
    a, b = cpu.compute(), gpu.compute()
    for name in (*metrics.SCORES, "mae", "rmse"):
        assert b[name] == pytest.approx(a[name], abs=2e-3), name
