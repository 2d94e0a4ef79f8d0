"""Foundation: light import, device/AMP decisions, `labkit info` (profiles: test_profiles.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import labkit
from labkit import device as dev
from labkit.cli import main as cli_main
from labkit.runs import get_profile


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
    assert labkit.runs.get_profile is get_profile
    assert labkit.get_profile is get_profile
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labkit.nope  # noqa: B018


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


def test_keep_freed_memory_leaves_a_users_own_malloc_setting():
    script = "from labkit.device import keep_freed_memory; print(keep_freed_memory())"
    env = {**__import__("os").environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr
