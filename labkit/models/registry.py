"""Models by name: ``MODELS``, ``build_model(name, **kwargs)``, ``build_from_spec``, the
cascade builder (it builds its stages by name), and ``summary`` / ``count_parameters``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from labkit.models.cascade import CascadeModel
from labkit.models.fvpaspp import FVPASPPUNet
from labkit.models.fvpaspp3d import FVPASPPUNet3d
from labkit.models.pretrained import unet_efficientnet_b0, unet_efficientnet_b3, unet_resnet34
from labkit.models.resunet import ResUNet
from labkit.models.unet import UNet


def cascade(
    in_channels: int = 3,
    classes: int = 1,
    lung_model: str = "unet",
    infection_model: str = "unet",
    lung_kwargs: dict[str, Any] | None = None,
    infection_kwargs: dict[str, Any] | None = None,
    threshold: float = 0.5,
    freeze_lung: bool = False,
) -> CascadeModel:
    """Build a :class:`CascadeModel` from two model names (lab 05, report 003).

    Report 003: ``cascade(in_channels=3, lung_model="unet-efficientnet-b3",
    infection_model="unet-efficientnet-b0", infection_kwargs={"dropout": 0.3})``.

    Args:
        in_channels: image channels (3 RGB, 1 grey); the infection stage gets one more.
        classes: infection head classes (1 sigmoid, 2 softmax). The lung head has 1
            unless ``lung_kwargs`` says otherwise.
        lung_model: any name in :data:`labkit.models.MODELS` except ``"cascade"``.
        infection_model: likewise.
        lung_kwargs: extra arguments for the lung model (not ``in_channels``).
        infection_kwargs: extra arguments for the infection model (not ``in_channels``
            or ``classes``).
        threshold: lung probability threshold.
        freeze_lung: see :class:`CascadeModel`.
    """
    lung_kwargs, infection_kwargs = dict(lung_kwargs or {}), dict(infection_kwargs or {})
    for stage, name, kwargs, reserved in (
        ("lung_model", lung_model, lung_kwargs, ("in_channels",)),
        ("infection_model", infection_model, infection_kwargs, ("in_channels", "classes")),
    ):
        if name == "cascade":
            raise ValueError(f"{stage} cannot be 'cascade' itself")
        clash = [k for k in reserved if k in kwargs]
        if clash:
            raise ValueError(
                f"{stage}: set {', '.join(clash)} on the cascade, not in its kwargs "
                f"(the infection stage always gets in_channels + 1 for the lung mask)"
            )
    lung = build_model(lung_model, in_channels=in_channels, **lung_kwargs)
    infection = build_model(
        infection_model, in_channels=in_channels + 1, classes=classes, **infection_kwargs
    )
    return CascadeModel(lung, infection, threshold=threshold, freeze_lung=freeze_lung)


# name -> builder (a class or a function with typed keyword arguments)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "resunet": ResUNet,
    "unet-resnet34": unet_resnet34,
    "unet-efficientnet-b0": unet_efficientnet_b0,
    "unet-efficientnet-b3": unet_efficientnet_b3,
    "cascade": cascade,
    "fvpaspp": FVPASPPUNet,
    "fvpaspp3d": FVPASPPUNet3d,
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
