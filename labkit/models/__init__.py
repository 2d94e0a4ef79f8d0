"""The segmentation models of the six labs, by name: ``build_model(name, **kwargs)``.

=========================  ====  ======================================================
name                       lab   what
=========================  ====  ======================================================
``unet``                   02    baseline U-Net, 3 down/up steps (report 001)
``resunet``                03    U-Net with residual encoder blocks (report 000)
``unet-resnet34``          04    smp U-Net, ResNet34 encoder (report 002)
``unet-efficientnet-b0``   04/05 smp U-Net, EfficientNet-B0 encoder (report 003)
``unet-efficientnet-b3``   04/05 smp U-Net, EfficientNet-B3 encoder (report 003)
``cascade``                05    lung model -> infection model masked to the lung (report 003)
``fvpaspp``                06    U-Net + FV blocks + PASPP + deep supervision (report 004)
=========================  ====  ======================================================

Every model takes ``(B, C, H, W)`` float images and returns **logits** ``(B, classes, H,
W)`` (1 class: sigmoid; 2 classes: softmax, channel 1 = infection), exposes ``.stride``
(H and W must be multiples of it, or build with ``pad=True``), and, with deep supervision
in training mode, returns a ``list`` of full-resolution logits, final output first.

Example::

    import labkit as lk
    model = lk.models.build_model("unet", in_channels=1, base_width=32)
    print(lk.models.summary(model))
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .blocks import ConvBNReLU, DoubleConv, ResidualBlock, UpBlock
from .cascade import OUTSIDE_LUNG_LOGIT, CascadeModel, CascadeOutput, cascade, mask_outside_lung
from .fvpaspp import PASPP, FVBlock, FVPASPPUNet
from .pretrained import (
    PretrainedUNet,
    unet_efficientnet_b0,
    unet_efficientnet_b3,
    unet_resnet34,
)
from .resunet import ResUNet
from .unet import UNet
from .weights import load_encoder_weights

# name -> builder (a class or a function with typed keyword arguments)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "resunet": ResUNet,
    "unet-resnet34": unet_resnet34,
    "unet-efficientnet-b0": unet_efficientnet_b0,
    "unet-efficientnet-b3": unet_efficientnet_b3,
    "cascade": cascade,
    "fvpaspp": FVPASPPUNet,
}

# Arguments that fetch weights: dropped by build_from_spec (the checkpoint has them all).
_WEIGHT_ARGS = ("encoder_weights", "weights_path")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model called ``name`` with keyword arguments ``kwargs``.

    The result carries ``model.labkit_spec = {"name": name, "kwargs": kwargs}`` so a
    checkpoint can rebuild the same architecture (:func:`build_from_spec`).

    Args:
        name: one of :data:`MODELS` (``"unet"``, ``"resunet"``, ``"unet-resnet34"``, ...).
        **kwargs: the builder's arguments, e.g. ``in_channels=1, classes=1``.

    Returns:
        The ``nn.Module``.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or unknown argument
            (the message lists the builder's arguments).
    """
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODELS)}.{hint}")
    builder = MODELS[name]
    accepted = list(inspect.signature(builder).parameters)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise ValueError(
            f"build_model({name!r}): unknown argument(s) {', '.join(unknown)}; "
            f"{name!r} accepts: {', '.join(accepted)}"
        )
    model = builder(**kwargs)
    model.labkit_spec = {"name": name, "kwargs": _jsonable(dict(kwargs))}
    return model


def _without_weight_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if key in _WEIGHT_ARGS:
            continue
        out[key] = _without_weight_args(value) if isinstance(value, dict) else value
    return out


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild the architecture described by ``model.labkit_spec``, randomly initialised.

    Weight-fetching arguments (``encoder_weights``, ``weights_path``, also inside the
    cascade's stage kwargs) are dropped: the caller loads a full state dict afterwards, so
    nothing is downloaded and no local weight file is needed.
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"spec must be a dict with 'name' and 'kwargs', got {spec!r}")
    return build_model(spec["name"], **_without_weight_args(dict(spec.get("kwargs") or {})))


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@dataclass
class ModelSummary:
    """Parameter counts of a model, per top-level part. ``str(summary)`` prints a table."""

    name: str
    parts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    trainable: int = 0

    def __str__(self) -> str:
        width = max([len(p) for p in self.parts] + [len("trainable")])
        lines = [f"{self.name}"]
        for part, count in self.parts.items():
            lines.append(f"  {part:<{width}}  {count:>12,}  ({count / 1e6:6.2f} M)")
        lines.append(f"  {'total':<{width}}  {self.total:>12,}  ({self.total / 1e6:6.2f} M)")
        lines.append(
            f"  {'trainable':<{width}}  {self.trainable:>12,}  ({self.trainable / 1e6:6.2f} M)"
        )
        return "\n".join(lines)


def summary(model: nn.Module) -> ModelSummary:
    """Parameter counts per top-level part (e.g. encoder / decoder / head), total, trainable.

    Args:
        model: any ``nn.Module``; labkit models name themselves via ``labkit_spec``.

    Returns:
        A :class:`ModelSummary`; ``print()`` it for a table. Parts without parameters are
        left out; parameters owned by the model itself appear as ``"(own)"``.
    """
    spec = getattr(model, "labkit_spec", None)
    name = spec["name"] if isinstance(spec, dict) else type(model).__name__
    parts = {n: count_parameters(child) for n, child in model.named_children()}
    parts = {n: c for n, c in parts.items() if c > 0}
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        parts["(own)"] = own
    return ModelSummary(
        name=name,
        parts=parts,
        total=count_parameters(model),
        trainable=count_parameters(model, trainable_only=True),
    )


__all__ = [
    "MODELS",
    "OUTSIDE_LUNG_LOGIT",
    "PASPP",
    "CascadeModel",
    "CascadeOutput",
    "ConvBNReLU",
    "DoubleConv",
    "FVBlock",
    "FVPASPPUNet",
    "ModelSummary",
    "PretrainedUNet",
    "ResUNet",
    "ResidualBlock",
    "UNet",
    "UpBlock",
    "build_from_spec",
    "build_model",
    "cascade",
    "count_parameters",
    "load_encoder_weights",
    "mask_outside_lung",
    "summary",
    "unet_efficientnet_b0",
    "unet_efficientnet_b3",
    "unet_resnet34",
]
