"""Checkpoints: round trip through load_model, atomic writes, clear errors for bad files."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

import labkit
from labkit.models import build_model
from labkit.train.checkpoint import (
    FORMAT,
    CheckpointError,
    atomic_save,
    load_checkpoint,
    load_model,
    require_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def small_unet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("unet", in_channels=1, base_width=4, depth=2)


@pytest.fixture
def saved(tmp_path):
    model = small_unet()
    path = save_checkpoint(
        tmp_path / "run" / "best.pt",
        model,
        epoch=3,
        config={"lr": 1e-3, "loss": "bce"},
        history={"epoch": [1, 2, 3], "val_dice": [0.1, 0.2, float("nan")]},
        data={"inputs": "grey", "target": "infection", "size": 32, "in_channels": 1},
    )
    return model, path


def test_load_model_rebuilds_the_architecture_and_weights(saved):
    model, path = saved
    loaded = load_model(path, device="cpu")
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.labkit_spec == {"name": "unet", "kwargs": model.labkit_spec["kwargs"]}
    x = torch.rand(2, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    info = loaded.labkit_checkpoint
    assert info["epoch"] == 3 and info["config"]["lr"] == 1e-3
    assert info["data"]["size"] == 32 and info["history"]["epoch"] == [1, 2, 3]


def test_checkpoint_contents_load_safely(saved):
    _, path = saved
    ckpt = torch.load(path, weights_only=True)  # no pickled code: a safe load must work
    assert ckpt["format"] == FORMAT and ckpt["format_version"] == 1
    assert ckpt["labkit_version"] == labkit.__version__
    assert ckpt["model"]["name"] == "unet" and ckpt["training_state"] is None
    assert set(ckpt["state_dict"]) == set(small_unet().state_dict())


def test_pretrained_weight_sources_are_not_refetched(tmp_path):
    # encoder_weights="imagenet" would need the internet; the rebuilt model must not ask.
    model = build_model("unet-efficientnet-b0", in_channels=3, classes=2)
    model.labkit_spec["kwargs"]["encoder_weights"] = "imagenet"
    path = save_checkpoint(tmp_path / "b0.pt", model)
    loaded = load_model(path, device="cpu")
    assert "encoder_weights" not in loaded.labkit_spec["kwargs"]
    key = next(iter(model.state_dict()))
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])


def test_atomic_write_leaves_no_temp_file_and_keeps_the_old_file_on_failure(saved):
    model, path = saved
    before = path.read_bytes()
    # A local function cannot be pickled: torch.save fails after the weights were written.
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):
        atomic_save({"weights": model.state_dict(), "bad": lambda: 0}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]
    save_checkpoint(path, model, epoch=4)  # overwriting works and is complete
    assert load_checkpoint(path)["epoch"] == 4
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]


def test_config_values_that_cannot_be_stored_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"config\['loss'\]"):
        save_checkpoint(tmp_path / "x.pt", small_unet(), config={"loss": nn.BCELoss()})
    assert not (tmp_path / "x.pt").exists()


def test_truncated_file_names_the_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="best.pt.*truncated"):
        load_model(path)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("random", "cannot read checkpoint"),
        ("json", "cannot read checkpoint"),
        ("state_dict", "plain state_dict"),
        ("foreign_object", "weights_only"),
        ("future", "format version 99"),
    ],
)
def test_foreign_files_give_clear_errors(tmp_path, kind, message):
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "json":
        path.write_text(json.dumps({"format": FORMAT, "state_dict": {}}))
    elif kind == "state_dict":
        torch.save(small_unet().state_dict(), path)
    elif kind == "foreign_object":
        torch.save({"format": FORMAT, "model": nn.Conv2d(1, 1, 1)}, path)
    else:
        save_checkpoint(path, small_unet())
        ckpt = torch.load(path, weights_only=True)
        ckpt["format_version"] = 99
        torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value) and "labkit checkpoint" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(tmp_path / "nope.pt")


def test_model_without_spec_saves_but_cannot_be_rebuilt(tmp_path):
    path = save_checkpoint(tmp_path / "conv.pt", nn.Conv2d(1, 1, 3))
    assert load_checkpoint(path)["model"] is None
    with pytest.raises(CheckpointError, match="no model spec"):
        load_model(path)


def test_weights_only_file_cannot_resume(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="resume from last.pt"):
        require_training_state(load_checkpoint(path), path)


def test_rng_state_round_trip(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    atomic_save(rng_state(), tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])
