"""fit(): real models from build_model on real phantom PNGs (written, decoded, batched)."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.data import BatchLoader, load_split
from labkit.data.phantom import make_phantom
from labkit.models import build_model
from labkit.train import History, NonFiniteLossError, TrainConfig, fit
from labkit.train.checkpoint import load_checkpoint, load_model

SIZE = 64


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """Train / Val SegData decoded from a small phantom PNG tree (120 images per subset)."""
    base = tmp_path_factory.mktemp("phantom")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE", str(base / "cache"))
        root = make_phantom(base / "data", n=120, size=SIZE, progress=False)
        return {s: load_split(root, s, size=SIZE, progress=False) for s in ("Train", "Val")}


def loaders(splits, batch_size=8, inputs="grey", limit=None):
    train, val = splits["Train"], splits["Val"]
    if limit:  # the first images are COVID-19 ones (sorted by class): Dice stays defined
        train, val = train.select(range(limit)), val.select(range(min(limit, 8)))
    return (
        BatchLoader(train, batch_size, shuffle=True, inputs=inputs, seed=1),
        BatchLoader(val, batch_size, shuffle=False, inputs=inputs),
    )


def unet(seed=0, **kwargs):
    torch.manual_seed(seed)
    return build_model("unet", in_channels=1, base_width=8, depth=2, **kwargs)


QUIET = dict(progress=False, device="cpu")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "epochs must be an int >= 1"),
        ("lr", -1.0, "lr must be a finite number > 0"),
        ("optimizer", "sgd", "optimizer must be one of"),
        ("loss", "l2", "loss must be one of"),
        ("scheduler", "step", "scheduler must be one of"),
        ("monitor", "val_acc", "monitor must be one of"),
        ("patience", 0, "patience must be None or an int >= 1"),
        ("time_budget_min", 0, "time_budget_min must be None"),
        ("grad_clip", -1, "grad_clip must be None or a number > 0"),
        ("threshold", 1.5, "threshold must be in"),
        ("amp", "yes", "amp must be True or False"),
        ("cudnn_benchmark", 1, "cudnn_benchmark must be True or False"),
        ("restore_best", "yes", "restore_best must be True or False"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=f"TrainConfig.{message}"):
        TrainConfig(**{field: value})


def test_config_modes_and_dict():
    assert TrainConfig().mode == "max" and TrainConfig(monitor="val_loss").mode == "min"
    d = TrainConfig(loss=torch.nn.BCEWithLogitsLoss(), out_dir=None).to_dict()
    assert d["loss"] == "BCEWithLogitsLoss" and d["monitor"] == "val_dice"
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        fit(unet(), [], [], TrainConfig(), epoch=3)


@pytest.mark.slow
def test_smoke_training_raises_validation_dice(splits, tmp_path):
    # COVID-only training (as reports 000 and 002), validation on all classes.
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, base_width=16, depth=3)
    train = BatchLoader(splits["Train"].filter("COVID-19"), 8, seed=1)
    val = BatchLoader(splits["Val"], 8, shuffle=False)
    cfg = TrainConfig(epochs=5, lr=3e-3, loss="bce_dice", out_dir=tmp_path, **QUIET)
    h = fit(model, train, val, cfg)
    assert h.epoch == [1, 2, 3, 4, 5] and h.stopped_reason == "completed"
    for key in ("train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds"):
        assert len(getattr(h, key)) == 5
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.val_dice[-1] > h.val_dice[0] + 0.1, h.val_dice
    assert h.best_metric == max(h.val_dice) and h.val_dice[h.best_epoch - 1] == h.best_metric
    assert math.isclose(h.train_seconds, sum(h.seconds))
    # best.pt holds the best epoch's weights and reloads without knowing the architecture
    best = load_model(tmp_path / "best.pt", device="cpu")
    assert best.labkit_checkpoint["epoch"] == h.best_epoch
    assert best.labkit_checkpoint["data"] == {
        "inputs": "grey", "target": "infection", "lung_only": False, "in_channels": 1, "size": SIZE
    }  # fmt: skip
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 5
    assert History.from_dict(h.to_dict()) == h


@pytest.mark.slow
def test_resume_gives_the_same_history_as_an_uninterrupted_run(splits, tmp_path):
    # Adam + cosine schedule + shuffling + dropout-free model: everything must be restored.
    cfg = TrainConfig(epochs=3, lr=3e-3, scheduler="cosine", seed=3, **QUIET)
    straight = fit(unet(), *loaders(splits, limit=24), cfg)
    # The same run, stopped by its time budget after epoch 1 (a Colab session ending) ...
    stopped = fit(unet(), *loaders(splits, limit=24), cfg, time_budget_min=1e-6, out_dir=tmp_path)
    assert stopped.epoch == [1] and stopped.stopped_reason == "time_budget"
    # ... resumed in a new session with the same budget (a fresh budget: one more epoch) ...
    again = fit(unet(seed=99), *loaders(splits, limit=24), cfg, time_budget_min=1e-6,
                out_dir=tmp_path, resume_from=tmp_path / "last.pt")  # fmt: skip
    assert again.epoch == [1, 2] and again.stopped_reason == "time_budget"
    # ... and finished in a third, with a differently initialised model object.
    resumed = fit(unet(seed=7), *loaders(splits, limit=24), cfg, resume_from=tmp_path / "last.pt")
    assert resumed.epoch == [1, 2, 3] and resumed.stopped_reason == "completed"
    for key in ("train_loss", "val_loss", "val_dice", "val_iou", "lr"):
        assert getattr(resumed, key) == pytest.approx(getattr(straight, key), rel=1e-5, abs=1e-6)
    assert resumed.best_epoch == straight.best_epoch


def test_restore_best_puts_back_the_best_epochs_weights(splits, tmp_path):
    # lr 1e-2 overshoots on this tiny set: the first epoch has the best val Dice, later ones
    # are worse, so the last epoch's weights (what the model holds without restore_best)
    # and the best epoch's differ. The oracle is best.pt, written by fit itself.
    def state(m):
        return {k: v.detach().clone() for k, v in m.state_dict().items()}

    cfg = TrainConfig(epochs=3, lr=1e-2, out_dir=tmp_path, **QUIET)
    plain = unet()
    h = fit(plain, *loaders(splits, limit=24), cfg)
    assert h.best_epoch < h.epoch[-1]  # the case where restoring matters
    best = load_checkpoint(tmp_path / "best.pt")["state_dict"]
    last = load_checkpoint(tmp_path / "last.pt")["state_dict"]
    assert all(torch.equal(v, last[k]) for k, v in state(plain).items())  # default: last
    restored = unet()
    h2 = fit(restored, *loaders(splits, limit=24), cfg, restore_best=True, out_dir=None)
    assert (h2.best_epoch, h2.val_dice) == (h.best_epoch, pytest.approx(h.val_dice))
    assert all(torch.equal(v, best[k]) for k, v in state(restored).items())
    assert any(not torch.equal(v, last[k]) for k, v in state(restored).items())


def test_restore_best_after_a_resume_reads_the_best_pt_beside_last_pt(splits, tmp_path):
    # Epoch 1 is the best (as above) and ends the first session; the resumed session's
    # epochs are worse, so the best weights exist only in best.pt from the first session.
    cfg = TrainConfig(epochs=3, lr=1e-2, out_dir=tmp_path, restore_best=True, **QUIET)
    first = fit(unet(), *loaders(splits, limit=24), cfg, time_budget_min=1e-6)
    assert first.epoch == [1] and first.best_epoch == 1
    best = load_checkpoint(tmp_path / "best.pt")["state_dict"]
    model = unet(seed=5)
    h = fit(model, *loaders(splits, limit=24), cfg, resume_from=tmp_path / "last.pt")
    assert h.epoch == [1, 2, 3] and h.best_epoch == 1
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    # without best.pt there is nothing to restore from: a warning says so
    (tmp_path / "best.pt").unlink()
    with pytest.warns(UserWarning, match="restore_best: the best epoch \\(1\\)"):
        fit(unet(), *loaders(splits, limit=24), cfg, out_dir=None, resume_from=tmp_path / "last.pt")


def test_time_budget_stops_after_the_current_epoch(splits):
    cfg = TrainConfig(epochs=4, time_budget_min=1e-6, **QUIET)
    h = fit(unet(), *loaders(splits, limit=8), cfg)
    assert h.epoch == [1] and h.stopped_reason == "time_budget"
    assert len(h.val_dice) == 1 and h.train_seconds > 0


def test_early_stopping_when_the_monitored_metric_stops_improving(splits):
    # Logits of -1e4 predict no infection anywhere: Dice is 0 on every COVID-19 image, and
    # at lr 1e-30 no step can change that, so val_dice never improves after epoch 1.
    model = unet()
    with torch.no_grad():
        model.head.bias.fill_(-1e4)
    cfg = TrainConfig(epochs=6, lr=1e-30, patience=2, **QUIET)
    h = fit(model, *loaders(splits, limit=8), cfg)
    assert h.stopped_reason == "early_stopping" and h.epoch == [1, 2, 3]
    assert h.val_dice == [0.0, 0.0, 0.0] and h.best_epoch == 1


def test_nan_weights_raise_naming_epoch_and_step(splits):
    model = unet()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))  # every logit is NaN from the first step on
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1") as err:
        fit(model, *loaders(splits, limit=16), TrainConfig(epochs=2, log_every=1, **QUIET))
    assert isinstance(err.value, FloatingPointError) and "learning rate" in str(err.value)


def test_nan_found_later_still_names_the_first_bad_step(splits):
    # log_every=100 reads losses only at the end of the epoch; the first bad step is named.
    model = unet()
    with torch.no_grad():
        model.head.bias.fill_(float("inf"))
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        fit(model, *loaders(splits, limit=16), TrainConfig(log_every=100, **QUIET))


def test_deep_supervision_lists_go_to_the_loss_and_metrics_use_the_final_output(splits):
    torch.manual_seed(0)
    model = build_model("fvpaspp", in_channels=1, base_width=8, depth=2)
    model.train()
    assert isinstance(model(torch.rand(1, 1, SIZE, SIZE)), list)
    cfg = TrainConfig(epochs=1, loss="bce_dice", **QUIET)
    with pytest.raises(ValueError, match="DeepSupervisionLoss"):  # a plain loss refuses lists
        fit(model, *loaders(splits, limit=8), cfg)
    h = fit(model, *loaders(splits, limit=8), cfg, deep_supervision=True)
    assert 0 <= h.val_dice[0] <= 1 and math.isfinite(h.val_loss[0])


def test_plain_iterables_of_pairs_and_plateau_schedule(splits):
    data = splits["Train"].select(range(8))
    x = data.images.float() / 255  # (8, 1, H, W)
    y = data.infection.float()
    pairs = [(x[:4], y[:4]), (x[4:], y[4:])]
    cfg = TrainConfig(epochs=4, scheduler="plateau", lr_patience=0, monitor="val_loss", **QUIET)
    h = fit(unet(), pairs, pairs, cfg)
    assert len(h) == 4
    # With lr_patience=0 the lr halves after every epoch that did not beat the best val_loss
    # (by torch's default relative threshold 1e-4), and stays otherwise.
    best = math.inf
    for i in range(1, 4):
        improved = h.val_loss[i - 1] < best * (1 - 1e-4)
        best = min(best, h.val_loss[i - 1])
        assert h.lr[i] == pytest.approx(h.lr[i - 1] * (1.0 if improved else 0.5))


def test_empty_loaders_are_errors(splits):
    with pytest.raises(ValueError, match="training loader yielded no batches"):
        fit(unet(), [], loaders(splits)[1], TrainConfig(**QUIET))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compile", [False, True])
def test_gpu_amp_channels_last_and_compile(splits, tmp_path, compile):
    from labkit.device import amp_dtype

    assert amp_dtype("cuda") in (torch.bfloat16, torch.float16)
    train = BatchLoader(splits["Train"], 8, device="cuda", seed=1)
    val = BatchLoader(splits["Val"], 8, shuffle=False, device="cuda")
    cfg = TrainConfig(epochs=2, lr=3e-3, amp=True, channels_last=True, compile=compile,
                      out_dir=tmp_path, progress=False, device="cuda")  # fmt: skip
    h = fit(unet(), train, val, cfg)
    assert all(math.isfinite(v) for v in h.train_loss + h.val_loss)
    assert 0 <= h.val_dice[-1] <= 1
    best = load_model(tmp_path / "best.pt", device="cpu")  # GPU checkpoint, CPU reload
    assert next(best.parameters()).device.type == "cpu"
    more = fit(unet(), train, val, cfg, epochs=3, resume_from=tmp_path / "last.pt")
    assert more.epoch == [1, 2, 3] and more.train_loss[:2] == h.train_loss
