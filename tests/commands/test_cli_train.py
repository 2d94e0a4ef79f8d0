"""`labkit train` / `labkit evaluate` end to end on a phantom PNG tree, and their errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from labkit.cli import build_parser
from labkit.cli import main as cli
from labkit.commands.train import _train_cascade_lungs, plan, train_models
from labkit.data import BatchLoader, load_split
from labkit.data.phantom import make_phantom
from labkit.models import MODELS, build_model
from labkit.runs import REPORT_SETTINGS, SAFETY_STOP, get_profile, settings_for_model
from labkit.train import TrainConfig, fit
from labkit.train.checkpoint import load_checkpoint, load_model


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A phantom COVID-QU-Ex tree (120 images per subset, 64 px) and a private cache."""
    base = tmp_path_factory.mktemp("phantom")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE", str(base / "cache"))
        mp.setenv("LABKIT_PROFILE", "smoke")
        mp.setenv("MPLBACKEND", "Agg")
        yield make_phantom(base / "data", n=120, size=64, progress=False)


def train_plan(*argv):
    return plan(build_parser().parse_args(["train", *argv]))


def test_every_model_has_report_settings_and_a_lab():
    # every 2-D model (lab 07's 3-D CT model trains in its own notebook) has its report's run
    assert set(train_models()) == {s.model for s in REPORT_SETTINGS.values() if s.model}
    assert set(train_models()) <= set(MODELS) and len(train_models()) >= 7


@pytest.mark.parametrize(
    "model, inputs, loss, extra",
    [
        ("unet", "grey", "bce", {"covid_only": False, "deep_supervision": False}),
        ("resunet", "grey", "bce", {"covid_only": True}),
        ("unet-resnet34", "rgb", "focal_jaccard", {"covid_only": True, "augment": "flips"}),
        ("cascade", "rgb", "combined", {"grad_clip": 1.0, "optimizer": "adamw"}),
        ("fvpaspp", "grey", "bce_dice", {"deep_supervision": True, "lung_only": True}),
    ],
)
def test_plan_follows_the_reports(model, inputs, loss, extra):
    p = train_plan("--model", model, "--profile", "smoke")
    cli = get_profile("smoke").cli_train
    assert settings_for_model(model).loss == loss  # the report's; smoke adds Dice to plain BCE
    assert (p["inputs"], p["config"].loss) == (inputs, cli.loss(loss))
    assert p["kwargs"]["in_channels"] == (3 if inputs == "rgb" else 1)
    assert {k: p[k] if k in p else getattr(p["config"], k) for k in extra} == extra
    # smoke: 64 px, and the CLI's departures from the report (labkit.runs.CLITraining)
    assert p["size"] == 64 and p["config"].epochs == cli.epochs
    assert p["config"].time_budget_min == get_profile("smoke").time_budget_min  # a safety net only
    assert p["train_images"] is None and p["config"].lr >= cli.min_lr
    assert p["kwargs"].get("base_width") == (
        16 if model in ("unet", "resunet", "fvpaspp") else None
    )
    assert p["departures"]  # printed and recorded: the run is not the report's


def test_smoke_departures_are_listed_and_full_keeps_the_report():
    smoke = train_plan("--model", "unet", "--profile", "smoke")
    assert (smoke["config"].epochs, smoke["config"].lr, smoke["config"].loss) == (
        10,
        3e-3,
        "bce_dice",
    )
    assert smoke["kwargs"]["base_width"] == 16 and smoke["train_images"] is None
    assert smoke["config"].scheduler == "cosine"
    text = "\n".join(smoke["departures"])
    for what in ("10 epochs (as the report), not the smoke profile's cap of 2",
                 "every Train image instead of 48", "base width 16",
                 "lr 0.003 instead of the report's 0.0001", "cosine lr decay", "loss bce_dice",
                 "only a safety limit"):  # fmt: skip
        assert what in text, what
    # report 002's loss has no plain BCE to replace; ResNet34 has no base width to shrink
    resnet = train_plan("--model", "unet-resnet34", "--profile", "smoke")
    assert resnet["config"].loss == "focal_jaccard" and "base_width" not in resnet["kwargs"]
    # a flag is the user's choice, not a departure
    flagged = train_plan("--model", "unet", "--profile", "smoke", "--lr", "1e-4", "--loss", "bce",
                         "--epochs", "2", "--time-budget", "5")  # fmt: skip
    settings = ("lr", "loss", "epochs", "time_budget_min")
    assert [getattr(flagged["config"], k) for k in settings] == [1e-4, "bce", 2, 5.0]
    assert [d.split(" instead")[0] for d in flagged["departures"]] == [
        "every Train image", "base width 16"
    ]  # fmt: skip
    assert flagged["config"].scheduler is None  # --lr means a constant lr, as in the reports
    full = train_plan("--model", "unet", "--profile", "full")
    assert full["departures"] == [] and full["kwargs"]["base_width"] == 64  # the table's
    assert full["config"].scheduler is None
    assert (full["config"].epochs, full["config"].lr, full["config"].loss, full["size"]) == (
        10,
        1e-4,
        "bce",
        256,
    )
    assert (full["config"].batch_size, full["train_images"], full["config"].time_budget_min) == (
        16,
        None,
        None,
    )


def test_smoke_training_of_an_efficientnet_encoder_gets_pytorchs_batch_norm_momentum():
    """As labs 04/05: a random-start EfficientNet at TensorFlow's momentum keeps its initial
    eval-mode statistics through a smoke run (benchmarks/RESULTS.md, session 5)."""
    from labkit.models import build_model, set_batch_norm_momentum

    b0 = train_plan("--model", "unet-efficientnet-b0", "--profile", "smoke")
    assert b0["bn_momentum"] == 0.1
    assert any("batch-norm momentum 0.1" in d for d in b0["departures"])
    assert train_plan("--model", "unet", "--profile", "smoke")["bn_momentum"] is None
    assert train_plan("--model", "unet-efficientnet-b0", "--profile", "full")["bn_momentum"] is None
    model = build_model("unet-efficientnet-b0", **b0["kwargs"])
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert min(m.momentum for m in norms) < 0.1  # smp's encoder: TensorFlow's 0.01
    set_batch_norm_momentum(model, b0["bn_momentum"])  # what `labkit train` does with it
    assert {m.momentum for m in norms} == {0.1}


def test_plan_pretrained_weights_and_overrides():
    smoke = train_plan("--model", "unet-resnet34", "--profile", "smoke")
    assert smoke["kwargs"] == {"classes": 2, "in_channels": 3}  # offline-safe: no download
    full = train_plan("--model", "unet-resnet34", "--profile", "full")
    assert full["kwargs"]["encoder_weights"] == "imagenet" and full["config"].epochs == 50
    cascade = train_plan("--model", "cascade", "--encoder-weights", "imagenet")
    assert cascade["kwargs"]["lung_kwargs"]["encoder_weights"] == "imagenet"
    p = train_plan(
        "--model", "unet", "--epochs", "3", "--size", "48", "--loss", "dice", "--lr", "0.01",
        "--batch-size", "4", "--covid-only", "--time-budget", "0.5", "--inputs", "rgb",
    )  # fmt: skip
    assert (
        p["config"].epochs,
        p["size"],
        p["config"].loss,
        p["config"].lr,
        p["config"].batch_size,
    ) == (3, 48, "dice", 0.01, 4)
    assert (
        p["covid_only"] and p["config"].time_budget_min == 0.5 and p["kwargs"]["in_channels"] == 3
    )


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--model", "unet", "--data", str(root), "--profile", "smoke", "--out", str(out)]
    assert cli(["train", *argv, "--epochs", "2", "--size", "32", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "unet" and metrics["split"] == "test"
    for key in ("dice", "iou", "sensitivity"):  # defined: every COVID-19 mask has infection
        assert 0 <= metrics[key] <= 1, key
    assert (
        metrics["precision"] is None or 0 <= metrics["precision"] <= 1
    )  # None: no pixel predicted
    test = load_split(root, "Test", size=32, limit=48, progress=False)
    assert metrics["n_images"] == test.classes.count("COVID-19")  # COVID-only headline
    assert metrics["all_images"]["n_images"] == len(test)
    assert set(metrics["per_class"]) == {"COVID-19", "Non-COVID", "Normal"}
    assert set(metrics["false_positive_image_rate"]) == {"Non-COVID", "Normal"}
    assert metrics["epochs"] == 2 and len(metrics["history"]["epoch"]) == 2
    assert metrics["train_seconds"] > 0 and metrics["profile"] == "smoke"
    assert (metrics["size"], metrics["loss"], metrics["inputs"]) == (32, "bce_dice", "grey")
    assert any("loss bce_dice" in d for d in metrics["departures"])  # smoke: not the report's
    assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    model = load_model(out / "best.pt", device="cpu")
    assert model.labkit_checkpoint["epoch"] == metrics["best_epoch"]
    assert "COVID-19" in capsys.readouterr().out

    # evaluate the same checkpoint on the same split: the same numbers
    eval_json = tmp_path / "eval.json"
    assert cli(["evaluate", str(out / "best.pt"), "--data", str(root), "--split", "test",
                "--profile", "smoke", "--out", str(eval_json), "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "COVID pooled" in printed and "false-positive image rate" in printed
    evaluated = json.loads(eval_json.read_text())
    for key in ("model", "split", "dice", "iou", "sensitivity", "precision", "epochs"):
        assert evaluated[key] == pytest.approx(metrics[key]), key
    assert_close(evaluated["all_images"], metrics["all_images"])
    assert_close(evaluated["per_class"], metrics["per_class"])


@pytest.mark.slow
def test_no_progress_still_prints_one_plain_line_per_epoch(root, tmp_path, capsys):
    argv = ["train", "--model", "unet", "--data", str(root), "--out", str(tmp_path / "run")]
    assert cli([*argv, "--size", "32", "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr()
    lines = [ln for ln in printed.out.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["1/2", "2/2"], printed.out
    number = r"\d+\.\d{4}"
    line = (
        rf"epoch \d/2  train_loss {number}  val_loss {number}  val_dice {number}  lr \S+  \d+\.\ds"
    )
    assert all(re.fullmatch(line, ln) for ln in lines), lines
    assert "it/s" not in printed.err and "\r" not in printed.err  # and no bars


def assert_close(a, b, where="") -> None:
    """Nested dicts of numbers (None for NaN) equal up to float rounding."""
    if isinstance(b, dict):
        assert set(a) == set(b), where
        for key in b:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif b is None:
        assert a is None, where
    else:
        assert a == pytest.approx(b), where


def test_bad_model_name_exits_nonzero_with_the_valid_names(root):
    env = dict(os.environ, LABKIT_CACHE=os.environ["LABKIT_CACHE"])
    proc = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "train", "--model", "unett", "--data", str(root)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--model: invalid choice: 'unett'" in proc.stderr and "resunet" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_data_and_unreadable_checkpoint_exit_2(root, tmp_path, capsys):
    missing = tmp_path / "no-such-data"
    assert cli(["train", "--model", "unet", "--data", str(missing), "--out", str(tmp_path)]) == 2
    assert str(missing) in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert cli(["evaluate", str(bad), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "cannot read checkpoint" in err and str(bad) in err
    assert cli(["evaluate", str(tmp_path / "none.pt"), "--data", str(root)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_diverging_training_is_a_clear_error(root, tmp_path, capsys):
    argv = ["train", "--model", "unet", "--data", str(root), "--out", str(tmp_path), "--lr", "1e30"]
    assert cli([*argv, "--epochs", "1", "--size", "16", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "training loss became" in err and "epoch 1, step" in err


def test_cascade_trains_its_lungs_first_then_freezes_them(root, tmp_path):
    small = {"base_width": 4, "depth": 2}
    torch.manual_seed(0)
    model = build_model(
        "cascade", in_channels=1, lung_model="unet", infection_model="unet",
        lung_kwargs=small, infection_kwargs=small,
    )  # fmt: skip
    train, val = (load_split(root, s, size=32, limit=16, progress=False) for s in ("Train", "Val"))

    def loaders(target):
        return BatchLoader(train, 8, target=target), BatchLoader(val, 8, target=target)

    cfg = TrainConfig(epochs=2, lr=1e-2, out_dir=tmp_path, progress=False, device="cpu")
    stage = REPORT_SETTINGS["003.cascade"].stages["lung"]
    lungs = _train_cascade_lungs(model, loaders("lung"), cfg, stage)
    assert len(lungs) == 2 and lungs.train_loss[-1] < lungs.train_loss[0]
    best = load_checkpoint(tmp_path / "lung" / "best.pt")["state_dict"]
    assert all(torch.equal(v, best[k]) for k, v in model.lung.state_dict().items())
    assert model.labkit_spec["kwargs"]["freeze_lung"] is True
    fit(model, *loaders("infection"), cfg)  # stage 2 must leave the lungs untouched
    assert all(torch.equal(v, best[k]) for k, v in model.lung.state_dict().items())
    rebuilt = load_model(tmp_path / "best.pt", device="cpu")
    assert not any(p.requires_grad for p in rebuilt.lung.parameters())


def test_practical_follows_the_labs_sizes():
    # practical binds the model's lab: lab 03's width and epochs, lab 05's 256 px
    res = train_plan("--model", "resunet", "--profile", "practical")
    assert (res["kwargs"]["base_width"], res["config"].epochs, res["size"]) == (32, 25, 256)
    assert any("25 epochs instead of 100" in d for d in res["departures"])
    cascade = train_plan("--model", "cascade", "--profile", "practical")
    assert cascade["size"] == 256 and cascade["config"].epochs == 6
    assert cascade["kwargs"]["lung_kwargs"]["encoder_weights"] == "imagenet"  # real data


@pytest.mark.slow
def test_a_run_stopped_by_the_safety_limit_says_so(root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "unet", "--data", str(root), "--out", str(out), "--size", "32"]
    assert cli([*argv, "--epochs", "3", "--time-budget", "1e-6", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert SAFETY_STOP in err and "after 1 epoch(s)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_reason"] == "time_budget" and metrics["epochs"] == 1
    assert SAFETY_STOP in metrics["safety_stop"]

    # the same --out again: refused, never overwritten; --resume continues after epoch 1
    assert cli([*argv, "--epochs", "3", "--no-progress"]) == 2
    assert "already holds a run (last.pt): add --resume" in capsys.readouterr().err
    # --resume with other settings than the run's: refused, naming them and the command to
    # repeat (a student who drops --epochs would cut a cosine decay short; another model
    # would fail to load the weights)
    assert cli([*argv, "--epochs", "5", "--no-progress", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume: these options differ" in err and "epochs 3 -> 5" in err, err
    assert f"`labkit {' '.join(argv)} --epochs 3 --time-budget 1e-6 --no-progress --resume`" in err
    other = [a if a != "unet" else "resunet" for a in argv]
    assert cli([*other, "--epochs", "3", "--no-progress", "--resume"]) == 2
    assert "model 'unet' -> 'resunet'" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1  # nothing trained
    assert cli([*argv, "--epochs", "3", "--no-progress", "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["history"]["epoch"] == [1, 2, 3] and metrics["stopped_reason"] == "completed"
    assert cli([*argv[:-2], "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "--resume: there is no" in capsys.readouterr().err


def test_weight_problems_are_one_line_in_the_commands_terms(root, tmp_path, capsys):
    bad = tmp_path / "encoder.safetensors"
    bad.write_bytes(b"not a weight file")
    argv = ["train", "--model", "unet-resnet34", "--data", str(root), "--out", str(tmp_path)]
    assert cli([*argv, "--weights-path", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"labkit train: error: --weights-path: {bad} could not be read"), err
    assert len(err.splitlines()) == 1
    # offline (no internet here): say what to pass to *this* command
    assert cli([*argv, "--encoder-weights", "imagenet", "--profile", "full"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit train: error: --encoder-weights imagenet:"), err
    assert "--weights-path FILE" in err and "build_model(" not in err
    assert len(err.splitlines()) == 1


def _train_in_subprocess(root, out, env):
    cmd = [sys.executable, "-m", "labkit.cli", "train", "--model", "unet", "--data", str(root),
           "--profile", "smoke", "--epochs", "2", "--out", str(out), "--no-progress"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=900)
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics[k] for k in ("epochs", "stopped_reason", "dice", "iou", "history")}


@pytest.mark.slow
def test_smoke_training_is_the_same_on_a_busy_machine(root, tmp_path):
    """Same seed and threads, once alone and once beside CPU hogs: identical epochs and scores."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    quiet = _train_in_subprocess(root, tmp_path / "quiet", env)
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)
    ]  # more busy processes than this machine's cores
    try:
        busy = _train_in_subprocess(root, tmp_path / "busy", env)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert quiet["stopped_reason"] == busy["stopped_reason"] == "completed"
    quiet["history"].pop("seconds"), busy["history"].pop("seconds")  # wall time may differ
    quiet["history"].pop("train_seconds"), busy["history"].pop("train_seconds")
    assert busy == quiet


def test_an_out_folder_that_cannot_be_written_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    assert cli(["train", "--model", "unet", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"labkit train: error: --out {blocker / 'run'}: cannot write there (Not a directory); "
        "expected a folder you can write to"
    )
