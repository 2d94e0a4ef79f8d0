"""Foundation: light import, run profiles, device/AMP decisions, `labkit info`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import labkit
from labkit import device as dev
from labkit.cli import main as cli_main
from labkit.profiles import PROFILES, get_profile


def test_import_is_light_and_side_effect_free():
    # A fresh interpreter: importing labkit must not pull torch, matplotlib or widgets in,
    # and must not seed anything.
    code = (
        "import sys, random; random.seed(123); a = random.random(); random.seed(123);"
        "import labkit;"
        "heavy = [m for m in ('torch', 'matplotlib', 'ipywidgets', 'segmentation_models_pytorch')"
        " if m in sys.modules];"
        "assert not heavy, heavy;"
        "assert random.random() == a, 'import labkit reseeded random';"
        "print('ok', labkit.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


def test_lazy_submodules_and_shortcuts():
    assert labkit.profiles.get_profile is get_profile
    assert labkit.get_profile is get_profile
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labkit.nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_by_name_and_env(name, monkeypatch):
    assert get_profile(name).name == name
    assert get_profile(name.upper()).name == name
    monkeypatch.setenv("LABKIT_PROFILE", name)
    assert get_profile().name == name


def test_default_profile_is_smoke(monkeypatch):
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    assert get_profile().name == "smoke"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match=r"'fast'.*valid profiles: full, smoke"):
        get_profile("fast")
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    with pytest.raises(ValueError, match="LABKIT_PROFILE"):
        get_profile()


def test_profile_scales_report_settings():
    smoke, full = get_profile("smoke"), get_profile("full")
    # full keeps the report's numbers; smoke caps them.
    assert (full.size(448), full.epochs(100), full.batch_size(32)) == (448, 100, 32)
    assert smoke.size(448) <= 128
    assert smoke.epochs(100) <= 2 and smoke.epochs(1) == 1
    assert smoke.batch_size(32) <= 32
    assert full.images() is None and smoke.images() is not None


def test_smoke_cli_training_departs_from_the_report_and_full_does_not():
    # the notebooks' caps stay as they are (their timing depends on them) ...
    smoke, full = get_profile("smoke"), get_profile("full")
    assert (smoke.image_size, smoke.max_epochs, smoke.max_images) == (64, 2, 48)
    assert (smoke.max_batch_size, smoke.phantom_n, smoke.time_budget_min) == (16, 240, 5.0)
    # ... while `labkit train` in smoke trains longer, narrower, faster, with a Dice term
    cli = smoke.cli_train
    assert cli.epochs > smoke.max_epochs and cli.all_train_images and cli.base_width < 64
    assert cli.lr(1e-4) == cli.min_lr and cli.lr(1.0) == 1.0  # a floor, not a replacement
    assert (cli.loss("bce"), cli.loss("mse"), cli.loss("focal_jaccard")) == (
        "bce_dice", "mse", "focal_jaccard"
    )  # fmt: skip
    assert full.cli_train is None  # the reports' settings, unchanged


def test_recipe_lists_each_smoke_departure_and_full_keeps_the_report():
    smoke, full = get_profile("smoke"), get_profile("full")
    report = dict(epochs=100, lr=1e-4, loss="bce", base_width=64, batch_size=16)
    r = full.recipe(**report)
    assert (r.epochs, r.lr, r.loss, r.base_width, r.batch_size) == (100, 1e-4, "bce", 64, 16)
    assert r.departures == {} and r.scheduler is None and "report's" in str(r)
    r = smoke.recipe(**report)
    cli = smoke.cli_train
    assert (r.epochs, r.lr, r.loss, r.base_width) == (cli.epochs, cli.min_lr, "bce_dice", 16)
    assert r.batch_size == smoke.batch_size(16) and "batch_size" not in r.departures
    assert r.train_images is None and r.scheduler == cli.scheduler
    assert list(r.departures) == [
        "epochs", "train_images", "base_width", "lr", "scheduler", "loss", "time_budget_min"
    ]  # fmt: skip
    for reason in r.departures.values():
        assert reason in str(r)  # printed for the student, each with its reason
    # a lab's own changes: fewer epochs, no Dice term, a smaller batch
    r = smoke.recipe(**report, smoke={"epochs": 3, "dice_term": False, "batch_size": 4})
    assert (r.epochs, r.loss, r.batch_size) == (3, "bce", 4)
    assert "loss" not in r.departures and "batch 4 instead of 16" in r.departures["batch_size"]
    # a caller that gives no batch gets none back, and no batch departure
    r = smoke.recipe(epochs=10, lr=1e-3, loss="bce", smoke={"batch_size": 4})
    assert r.batch_size is None and "batch_size" not in r.departures and r.base_width is None
    with pytest.raises(ValueError, match="no_such_setting.*batch_size"):
        smoke.recipe(**report, smoke={"no_such_setting": 1})


@pytest.mark.parametrize(
    "device_type, capability, expected",
    [
        ("cuda", (9, 0), torch.bfloat16),  # H100
        ("cuda", (8, 0), torch.bfloat16),  # A100
        ("cuda", (8, 9), torch.bfloat16),  # L4
        ("cuda", (7, 5), torch.float16),  # T4: bf16 only emulated
        ("cuda", (7, 0), torch.float16),  # V100
        ("cpu", None, None),
        ("mps", None, None),
    ],
)
def test_amp_decision(device_type, capability, expected):
    dtype = dev.decide_amp(device_type, capability)
    assert dtype == expected
    assert dev.needs_grad_scaler(dtype) == (expected == torch.float16)


def test_amp_decision_needs_capability_for_cuda():
    with pytest.raises(ValueError, match="capability"):
        dev.decide_amp("cuda", None)


def test_pick_device_cpu_and_errors(monkeypatch):
    monkeypatch.delenv("LABKIT_DEVICE", raising=False)
    assert dev.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        dev.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            dev.pick_device("cuda")
        monkeypatch.setenv("LABKIT_DEVICE", "cuda")
        with pytest.raises(ValueError, match="LABKIT_DEVICE"):
            dev.pick_device()
    monkeypatch.setenv("LABKIT_DEVICE", "cpu")
    assert dev.pick_device() == torch.device("cpu")


def test_amp_off_on_cpu_and_scaler_disabled():
    assert dev.amp_dtype("cpu") is None
    assert not dev.make_grad_scaler("cpu", None).is_enabled()
    with dev.autocast("cpu", None):
        x = torch.ones(2, 2) @ torch.ones(2, 2)
    assert x.dtype == torch.float32
    with dev.autocast("cpu", torch.bfloat16):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16


def test_channels_last_and_seed():
    conv = dev.channels_last(torch.nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = dev.channels_last(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    dev.seed_everything(7)
    a = torch.rand(3)
    dev.seed_everything(7)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(ValueError, match="seed"):
        dev.seed_everything(-1)


def test_labkit_info_json(capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_DEVICE", "cpu")
    assert cli_main(["info", "--json", "--profile", "smoke"]) == 0
    facts = json.loads(capsys.readouterr().out)
    for key in ("labkit", "python", "torch", "torchvision", "segmentation-models-pytorch"):
        assert facts[key] and facts[key] != "not installed", key
    assert facts["device"] == "cpu"
    assert facts["amp"].startswith("none")
    assert facts["colab"] is False
    assert facts["profile"].startswith("smoke")
    assert "data" in facts


def test_labkit_info_bad_profile_exits_nonzero(capsys):
    assert cli_main(["info", "--profile", "nope"]) == 2
    assert "valid profiles" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "info" in out.stdout
