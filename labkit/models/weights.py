"""Pretrained encoder weights for lab 04: smp's hub download, failing fast offline, or a local file.

segmentation_models_pytorch (smp) 0.6 downloads ImageNet encoder weights from the Hugging
Face hub (``smp-hub/<encoder>.imagenet``, a ``model.safetensors`` file). Offline, the hub
client retries for about half a minute before giving up with a vague message. labkit
checks first, in well under a second, whether the files are cached or the host is
reachable, and otherwise raises a ``RuntimeError`` that says how to get the weights.

:func:`load_encoder_weights` loads a local ``.safetensors`` / ``.pt`` / ``.pth`` encoder
state dict (for example smp's hub file copied from a machine with internet).
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from torch import Tensor, nn

PROBE_TIMEOUT_S = 3.0
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# Classifier layers that smp's encoders (or labkit) delete because the encoder never runs
# them; ImageNet files (torchvision's, smp's hub files) still carry them.
_CLASSIFIER_PREFIXES = ("fc.", "_fc.", "_conv_head.", "_bn1.")


def hub_settings(encoder_name: str, encoder_weights: str) -> dict[str, Any]:
    """smp's download settings for ``encoder_weights`` of ``encoder_name`` (ValueError if none)."""
    from segmentation_models_pytorch.encoders import encoders

    available = encoders[encoder_name]["pretrained_settings"]
    if encoder_weights not in available:
        raise ValueError(
            f"encoder_weights={encoder_weights!r} is not available for encoder "
            f"{encoder_name!r}; expected None or one of {sorted(available)}"
        )
    return dict(available[encoder_weights])


def _weights_url(settings: dict[str, Any]) -> str:
    if "repo_id" in settings:  # smp >= 0.5: Hugging Face hub
        from huggingface_hub import constants

        revision = settings.get("revision") or "main"
        return f"{constants.ENDPOINT}/{settings['repo_id']}/resolve/{revision}/model.safetensors"
    return str(settings["url"])  # older smp: a direct URL


def _cached(settings: dict[str, Any]) -> bool:
    """True when the hub files are already in the local Hugging Face cache."""
    if "repo_id" not in settings:
        return False
    from huggingface_hub import try_to_load_from_cache

    return all(
        isinstance(
            try_to_load_from_cache(settings["repo_id"], f, revision=settings.get("revision")),
            str,
        )
        for f in ("config.json", "model.safetensors")
    )


def _probe(url: str, timeout: float) -> str | None:
    """Open a TCP connection to the host of ``url`` (or its proxy). None if it worked, else why."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or 80
    # In a thread, because the socket timeout does not cover the DNS lookup, which can
    # hang for many seconds on a machine without network.
    result: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as err:
            result.append(f"cannot connect to {host}:{port} ({err})")

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        return f"no answer from {host}:{port} within {timeout:g} s"
    return result[0]


def offline_help(name: str, encoder_name: str, settings: dict[str, Any], reason: str) -> str:
    """The message for a failed download: what happened and the three ways forward."""
    url = _weights_url(settings)
    return (
        f"{name}: could not download the ImageNet weights of encoder {encoder_name!r}: "
        f"{reason}.\nThis machine seems to have no internet access. Ways forward:\n"
        "  * On Colab (or any machine with internet) encoder_weights='imagenet' downloads "
        "them automatically.\n"
        f"  * Or download {url} on a machine with internet, copy the file here and pass "
        f"build_model({name!r}, encoder_weights=None, weights_path='model.safetensors').\n"
        "  * Or train from scratch with encoder_weights=None (expect worse results)."
    )


def check_download_possible(
    name: str, encoder_name: str, settings: dict[str, Any], timeout: float = PROBE_TIMEOUT_S
) -> None:
    """Raise ``RuntimeError`` within ``timeout`` seconds if smp's download cannot work.

    Passes when the files are in the Hugging Face cache (smp then loads them without any
    network access) or when the weights host (or the configured proxy) accepts a TCP
    connection. Fails at once when ``HF_HUB_OFFLINE`` is set and nothing is cached.
    """
    if _cached(settings):
        return
    if "repo_id" in settings:
        from huggingface_hub import constants

        offline = getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)()
        if offline:
            raise RuntimeError(
                offline_help(
                    name,
                    encoder_name,
                    settings,
                    "HF_HUB_OFFLINE is set and the files are not in the Hugging Face cache",
                )
            )
    reason = _probe(_weights_url(settings), timeout)
    if reason is not None:
        raise RuntimeError(offline_help(name, encoder_name, settings, reason))


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a ``.safetensors`` or ``.pt``/``.pth``/``.bin`` state dict onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights_path: no such file: {path}")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"weights_path: {path} should end with one of {WEIGHT_SUFFIXES}")
    try:  # a truncated or foreign file: one clear error naming it, not a loader's traceback
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"weights_path: {path} could not be read as {path.suffix} weights (damaged or "
            f"not a weight file? {type(err).__name__}: {detail})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a checkpoint that wraps the state dict
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"weights_path: {path} does not hold a state dict of tensors")
    return state


def _adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """A 3-channel (RGB) first-conv kernel for ``in_channels`` inputs, the way smp does it.

    Grey (1 channel): sum over RGB, so a grey image x gives the response the RGB image
    (x, x, x) would. Otherwise: repeat R, G, B cyclically and scale by 3 / in_channels.
    """
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = torch.stack([weight[:, i % 3] for i in range(in_channels)], dim=1)
    return repeated * (3 / in_channels)


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_encoder_weights(encoder: nn.Module, path: str | Path, in_channels: int) -> None:
    """Load a local encoder state dict into ``encoder`` (strict; errors name the keys).

    Accepts a file saved from ``model.encoder.state_dict()`` or smp's 3-channel hub file:
    a 3-channel first convolution is adapted to ``in_channels`` exactly as smp adapts the
    downloaded weights. Classifier keys (``fc.*``, ``_fc.*``; EfficientNet's unused
    ``_conv_head.*``, ``_bn1.*``) that the encoder does not have are ignored, as smp's own
    loader ignores ``fc.*``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: missing or unexpected keys (listed by name) or mismatched shapes.
    """
    state = read_state_dict(path)
    own = encoder.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_CLASSIFIER_PREFIXES)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        hint = ""
        if any(k.startswith("encoder.") for k in unexpected):
            hint = (
                " The file looks like a whole model's state dict; weights_path expects the "
                "encoder's (torch.save(model.encoder.state_dict(), path)); load a whole model "
                "with model.load_state_dict(...) instead."
            )
        raise ValueError(
            f"weights_path: {path} does not match the encoder. Missing keys: "
            f"{_names(missing) or 'none'}. Unexpected keys: {_names(unexpected) or 'none'}.{hint}"
        )
    first_conv = next(n for n, m in encoder.named_modules() if isinstance(m, nn.Conv2d))
    first_key = f"{first_conv}.weight"
    if state[first_key].shape[1] == 3 and own[first_key].shape[1] == in_channels != 3:
        state[first_key] = _adapt_first_conv(state[first_key], in_channels)
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if v.shape != own[k].shape
    ]
    if wrong:
        raise ValueError(f"weights_path: {path} has tensors of the wrong shape: {_names(wrong)}")
    encoder.load_state_dict(state, strict=True)
