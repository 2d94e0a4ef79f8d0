"""What fit records and shows: train Dice/IoU, monitors that see healthy images, the epoch
bar after an early stop, derived counters, the batch size (issue 14 and issue 15 items 5,
12, 13). Hand-computed cases use a model whose every logit is one trainable number."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from labkit.data import BatchLoader, load_split
from labkit.data.phantom import make_phantom
from labkit.losses import build_loss
from labkit.models import build_model
from labkit.runs import SAFETY_STOP, cut_note, cut_text, stop_warning
from labkit.train import MONITORS, History, TrainConfig, fit
from labkit.train.checkpoint import load_checkpoint
from labkit.train.limits import DEADLINE_ENV
from labkit.train.loop import make_optimizer
from labkit.train.step import Forward, TrainStep, validate

QUIET = dict(progress=False, device="cpu")


class Constant(nn.Module):
    """Every pixel gets the logit ``value`` (a parameter, so the optimizer has work)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor([value]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value * torch.ones_like(x[:, :1])  # (B, 1, H, W)


def one_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 4x4 images: #0 has a 2x2 lesion (4 of 16 pixels), #1 is healthy (empty mask)."""
    x = torch.zeros(2, 1, 4, 4)
    y = torch.zeros(2, 1, 4, 4)
    y[0, 0, :2, :2] = 1
    return x, y


def test_validation_scores_that_see_healthy_images():
    # Logit +10 marks every pixel. Image 0: tp 4, fp 12 -> Dice 8/20 = 0.4, IoU 4/16.
    # Image 1 (healthy): fp 16. val_dice skips it (0.4); val_dice_all scores it 0 ->
    # (0.4 + 0) / 2 = 0.2; pooled: tp 4, fp 28, fn 0 -> 8 / 36.
    model, cfg = Constant(10.0), TrainConfig(**QUIET)
    got = validate(Forward(model, False), [one_batch()], build_loss("bce"), torch.device("cpu"),
                   None, cfg)  # fmt: skip
    assert got["val_dice"] == pytest.approx(0.4) and got["val_iou"] == pytest.approx(0.25)
    assert got["val_dice_all"] == pytest.approx(0.2)
    assert got["val_dice_pooled"] == pytest.approx(8 / 36)
    # predicting nothing: val_dice 0 on the lesion image; the healthy one now scores 1
    got = validate(Forward(Constant(-10.0), False), [one_batch()], build_loss("bce"),
                   torch.device("cpu"), None, cfg)  # fmt: skip
    assert got["val_dice"] == 0.0 and got["val_dice_all"] == pytest.approx(0.5)
    assert got["val_dice_pooled"] == 0.0
    assert MONITORS["val_dice_all"] == MONITORS["val_dice_pooled"] == "max"


def test_train_epoch_scores_the_training_batches_it_trained_on():
    model = Constant(10.0)
    cfg = TrainConfig(lr=1e-9, **QUIET)  # the logit stays ~10: every pixel predicted
    opt = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = TrainStep(Forward(model, False), build_loss("bce"), opt, scaler,
                     torch.device("cpu"), None, cfg)  # fmt: skip
    scores, shape = step.train_epoch([one_batch(), one_batch()], epoch=1)
    assert shape == (2, 1, 4, 4)
    # as above: the lesion images score Dice 0.4 / IoU 0.25, the healthy ones are excluded
    assert scores["train_dice"] == pytest.approx(0.4) and scores["train_iou"] == pytest.approx(0.25)
    # BCE with logit 10, per batch of 32 pixels: 4 lesion pixels cost softplus(-10), the
    # 28 others softplus(10)
    expected = (4 * math.log1p(math.exp(-10)) + 28 * math.log1p(math.exp(10))) / 32
    assert scores["train_loss"] == pytest.approx(expected, rel=1e-4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("phantom")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE", str(base / "cache"))
        root = make_phantom(base / "data", n=60, size=32, progress=False)
        train = load_split(root, "Train", size=32, progress=False).select(range(12))
        val = load_split(root, "Val", size=32, progress=False)
    return BatchLoader(train, 4, seed=1), BatchLoader(val, 4, shuffle=False)


def small_unet(bias: float | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, base_width=4, depth=2)
    if bias is not None:
        with torch.no_grad():
            model.head.bias.fill_(bias)
    return model


def test_fit_records_train_scores_and_selects_on_a_monitor_that_sees_healthy_images(tiny):
    h = fit(small_unet(), *tiny, TrainConfig(epochs=2, monitor="val_dice_all", **QUIET))
    for key in ("train_dice", "train_iou", "val_dice_all", "val_dice_pooled"):
        values = getattr(h, key)
        assert len(values) == 2 and all(0 <= v <= 1 for v in values), (key, values)
    assert h.best_metric == max(h.val_dice_all)
    assert h.val_dice_all[h.best_epoch - 1] == h.best_metric


def test_epoch_bar_counts_the_epochs_done_and_says_why_it_stopped(tiny, capsys):
    # As in test_train's early-stopping test: logits -1e4 and lr 1e-30 never improve, so
    # patience 2 stops after epoch 3 of 6.
    cfg = TrainConfig(epochs=6, lr=1e-30, patience=2, device="cpu")
    h = fit(small_unet(bias=-1e4), *tiny, cfg)
    assert h.epoch == [1, 2, 3] and h.stopped_reason == "early_stopping"
    final = capsys.readouterr().err.split("\r")[-1]  # the bar's last state
    # an early stop is a success: the bar ends full at the epochs done, and says why
    assert "stopped early after 3 of 6" in final and "3/3" in final, final
    assert "no better val_dice for 2" in final, final


def test_a_deadline_from_course_run_cuts_training_and_says_which_limit(tiny, capsys, monkeypatch):
    monkeypatch.setenv(DEADLINE_ENV, f"{time.time():.3f}")  # no time left for a 2nd epoch
    h = fit(small_unet(), *tiny, TrainConfig(epochs=4, device="cpu"))
    assert h.epoch == [1] and h.stopped_reason == "time_budget"
    assert h.epochs_planned == 4 and "lab's time limit" in h.stopped_by
    shown = capsys.readouterr()
    assert "CUT after 1 of 4" in shown.err.split("\r")[-1]  # the bar says it was cut
    # measured after the first epoch: how long the run takes here, and where it will be cut
    assert "1 epoch(s) took" in shown.out and "stop it after about epoch 1 of 4" in shown.out
    warning = stop_warning(h)
    assert SAFETY_STOP in warning and "after 1 epoch(s) of 4" in warning and "unfair" in warning
    assert cut_text(h) == "CUT at 1 of 4 epochs"
    assert "CUT at 1 of 4 epochs" in cut_note({"unet": h, "other": History(epoch=[1, 2])})
    assert cut_note({"other": History(epoch=[1, 2])}) == ""  # nothing cut: no note


def test_counters_are_derived_from_the_epochs():
    h = History(epoch=[1, 2, 3, 4], seconds=[1.5, 2.0, 0.25, 1.0], best_epoch=2)
    assert h.epochs_without_improvement() == 2 and h.train_seconds == 4.75
    assert History(epoch=[1, 2]).epochs_without_improvement() == 2  # never improved
    assert h.to_dict()["train_seconds"] == 4.75


def test_a_history_saved_before_the_new_fields_loads_with_aligned_lists():
    old = {"epoch": [1, 2], "train_loss": [0.5, 0.4], "val_dice": [0.1, 0.2],
           "train_seconds": 3.0, "best_epoch": 2}  # fmt: skip
    h = History.from_dict(old)
    assert h.train_loss == [0.5, 0.4] and h.best_epoch == 2
    assert len(h.train_dice) == 2 and all(math.isnan(v) for v in h.train_dice)


def test_batch_size_is_the_loaders_and_must_agree(tiny, tmp_path):
    fit(small_unet(), *tiny, TrainConfig(epochs=1, out_dir=tmp_path, **QUIET))
    assert load_checkpoint(tmp_path / "last.pt")["config"]["batch_size"] == 4
    with pytest.raises(
        ValueError, match="batch_size is 16 but the training loader's batch_size is 4"
    ):
        fit(small_unet(), *tiny, TrainConfig(epochs=1, batch_size=16, **QUIET))
