"""Pretrained encoder weights: local files (weights_path=), the Hugging Face cache, and the
fast, explained failure when the weights cannot be downloaded (this machine is offline).

The smp hub layout is used for real: a test writes an encoder state dict where
huggingface_hub's cache would hold the downloaded file, and smp's own loader reads it.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import save_file

from labkit.models import build_model
from labkit.models.weights import hub_settings

NAME = "unet-efficientnet-b0"  # the smallest of the three encoders: fast to build
ENCODER = "efficientnet-b0"


def encoder_state(in_channels: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(NAME, in_channels=in_channels)
    return {k: v.clone().contiguous() for k, v in model.encoder.state_dict().items()}


def assert_encoder_equals(model, state):
    own = model.encoder.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(own[key], value, msg=key)


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache with nothing in it, and no proxy: as on a fresh offline machine."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return cache


# --- weights_path --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_weights_path_loads_the_encoder(tmp_path, suffix):
    state = encoder_state(seed=1)
    path = tmp_path / f"encoder{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    torch.manual_seed(2)  # a different random init: only the file can make them equal
    model = build_model(NAME, in_channels=3, weights_path=path)
    assert_encoder_equals(model, state)
    assert model.labkit_spec["kwargs"]["weights_path"] == str(path)  # plain str: storable


def test_weights_path_adapts_a_three_channel_file_like_smp(tmp_path):
    state = encoder_state(seed=1)
    path = tmp_path / "rgb.safetensors"
    save_file(state, str(path))
    rgb = state["_conv_stem.weight"]  # (32, 3, 3, 3)
    grey = build_model(NAME, in_channels=1, weights_path=path)
    torch.testing.assert_close(grey.encoder._conv_stem.weight, rgb.sum(dim=1, keepdim=True))
    four = build_model(NAME, in_channels=4, weights_path=path)
    expected = torch.stack([rgb[:, i % 3] for i in range(4)], dim=1) * 3 / 4
    torch.testing.assert_close(four.encoder._conv_stem.weight, expected)


def test_weights_path_ignores_the_classifier_of_an_imagenet_file(tmp_path):
    state = encoder_state(seed=1)
    full = dict(state)
    full["_fc.weight"] = torch.zeros(1000, 1280)  # ImageNet classifier: not in an encoder
    full["_conv_head.weight"] = torch.zeros(1280, 320, 1, 1)  # never run by the encoder
    path = tmp_path / "imagenet.safetensors"
    save_file(full, str(path))
    model = build_model(NAME, in_channels=3, weights_path=path)
    assert_encoder_equals(model, state)


def test_weights_path_wrong_keys_are_named(tmp_path):
    state = encoder_state()
    state.pop("_bn0.running_var")
    state["_blocks.99.mystery.weight"] = torch.zeros(3)
    path = tmp_path / "wrong.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError) as err:
        build_model(NAME, weights_path=path)
    message = str(err.value)
    assert "Missing keys: _bn0.running_var" in message
    assert "Unexpected keys: _blocks.99.mystery.weight" in message
    assert str(path) in message


def test_weights_path_whole_model_state_dict_gets_a_hint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "whole.pt"
    torch.save(build_model(NAME).state_dict(), path)
    with pytest.raises(ValueError, match="whole model's state dict"):
        build_model(NAME, weights_path=path)


def test_weights_path_wrong_shape_is_named(tmp_path):
    state = encoder_state()
    state["_bn0.weight"] = torch.ones(7)
    path = tmp_path / "shape.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r"_bn0.weight: file \(7,\) vs model \(32,\)"):
        build_model(NAME, weights_path=path)


def test_weights_path_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        build_model(NAME, weights_path=tmp_path / "nope.safetensors")
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        build_model(NAME, weights_path=odd)
    with pytest.raises(ValueError, match="either encoder_weights"):
        build_model(NAME, encoder_weights="imagenet", weights_path=odd)
    with pytest.raises(ValueError, match="'advprop', 'imagenet'"):
        build_model(NAME, encoder_weights="imagenet21k")


# --- encoder_weights="imagenet": cache, offline failure ---------------------------------


def fill_hub_cache(cache: Path, state: dict[str, torch.Tensor]) -> None:
    """Write the files where huggingface_hub keeps a downloaded smp-hub snapshot."""
    settings = hub_settings(ENCODER, "imagenet")
    repo = settings["repo_id"].replace("/", "--")
    snapshot = cache / f"models--{repo}" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"mean": [0.485], "std": [0.229]}))
    save_file(state, str(snapshot / "model.safetensors"))


@pytest.mark.parametrize("in_channels", [3, 1])
def test_imagenet_weights_from_the_hub_cache_use_smps_loader(
    empty_hub_cache, monkeypatch, in_channels
):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network at all
    state = encoder_state(seed=3)
    # The real hub file is smp's whole EfficientNet encoder: it also holds the 1x1 head
    # conv + BN that the encoder never runs (labkit drops them after loading).
    state["_conv_head.weight"] = torch.randn(1280, 320, 1, 1)
    for part in ("weight", "bias", "running_mean", "running_var"):
        state[f"_bn1.{part}"] = torch.rand(1280)
    fill_hub_cache(empty_hub_cache, state)
    model = build_model(NAME, in_channels=in_channels, encoder_weights="imagenet")
    # smp adapted the first conv; labkit's weights_path must adapt it identically.
    path = empty_hub_cache / "copy.safetensors"
    save_file(state, str(path))
    local = build_model(NAME, in_channels=in_channels, weights_path=path)
    assert_encoder_equals(model, local.encoder.state_dict())
    # and everything after the first conv is the cached file, not a random init
    loaded = model.encoder.state_dict()
    for key in loaded:
        if key != "_conv_stem.weight" or in_channels == 3:
            torch.testing.assert_close(loaded[key], state[key], msg=key)


def _assert_helpful(message: str) -> None:
    assert "could not download the ImageNet weights" in message
    assert "Colab" in message
    assert "weights_path=" in message
    assert "smp-hub/efficientnet-b0.imagenet" in message  # where to get the file


def test_imagenet_offline_mode_fails_at_once(empty_hub_cache, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        build_model(NAME, encoder_weights="imagenet")
    assert time.monotonic() - start < 30  # generous: it takes milliseconds
    _assert_helpful(str(err.value))
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_imagenet_unreachable_host_fails_fast(empty_hub_cache, monkeypatch):
    # Port 9 (discard) on localhost: nothing listens, the connection is refused at once.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9)) == 0:
            pytest.skip("something listens on 127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        build_model(NAME, encoder_weights="imagenet")
    assert time.monotonic() - start < 30
    _assert_helpful(str(err.value))
    assert "cannot connect to 127.0.0.1:9" in str(err.value)
    assert "http://127.0.0.1:9/smp-hub/efficientnet-b0.imagenet/resolve/" in str(err.value)


def test_imagenet_on_this_offline_machine_fails_fast_with_instructions(
    empty_hub_cache, monkeypatch
):
    """The real default endpoint, as a student without internet would hit it."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    host = huggingface_hub.constants.ENDPOINT.split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=3).close()
        pytest.skip(f"{host} is reachable: this test is about the offline failure")
    except OSError:
        pass
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        build_model("unet-resnet34", encoder_weights="imagenet")
    assert time.monotonic() - start < 30  # smp's own retry loop takes ~25 s
    assert "smp-hub/resnet34.imagenet" in str(err.value)
    assert "weights_path=" in str(err.value)
