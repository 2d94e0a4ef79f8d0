"""Sliding-window inference: a network trained on patches, run over a whole volume.

The window moves over the volume with ``overlap`` (0.5: each step is half a window) and the
last window on each axis sits flush with the end, so every voxel is covered. Where windows
overlap their predictions are averaged, weighted by ``blend``: ``"gaussian"`` trusts a
window's centre more than its borders (which saw less context), ``"constant"`` weighs all
voxels alike. This is the behaviour of MONAI's ``sliding_window_inference`` (same overlap
rule, Gaussian sigma = 1/8 of the window), written out in a few dozen lines so that students
can read it and labkit does not depend on MONAI for one function (ARCHITECTURE.md, "CT").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

BLENDS = ("gaussian", "constant")


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Starts of the windows along one axis: a step of ``window * (1 - overlap)`` (at least 1),
    plus a last window ending exactly at ``length``. ``length <= window``: one window at 0."""
    if length <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    starts = list(range(0, length - window + 1, step))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def blend_weights(window: tuple[int, ...], blend: str) -> torch.Tensor:
    """The weight of each voxel of a window: ones, or a Gaussian (sigma = window / 8)."""
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    if blend == "constant":
        return torch.ones(window)
    axes = []
    for w in window:
        centre, sigma = (w - 1) / 2, max(w / 8, 1e-3)
        axes.append(torch.exp(-0.5 * ((torch.arange(w) - centre) / sigma) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (weights / weights.max()).clamp_min(1e-3)  # borders still count a little


@torch.no_grad()
def sliding_window(
    volume: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    window: tuple[int, int, int],
    overlap: float = 0.5,
    blend: str = "gaussian",
    batch_size: int = 4,
) -> torch.Tensor:
    """Run ``predictor`` on overlapping windows of ``volume`` and blend the results.

    Args:
        volume: ``(1, C, X, Y, Z)``. Sides smaller than the window are zero-padded, and the
            output is cropped back.
        predictor: ``(B, C, *window) -> (B, K, *window)`` (e.g. a model then a sigmoid).
        window: ``(X, Y, Z)`` window size (the training patch size).
        overlap: fraction of a window shared with the next, in [0, 1).
        blend: ``"gaussian"`` or ``"constant"``.
        batch_size: windows per predictor call.

    Returns:
        ``(1, K, X, Y, Z)`` float32 on ``volume``'s device.

    Raises:
        ValueError: a volume that is not ``(1, C, X, Y, Z)``, or a bad overlap / blend.
    """
    if volume.ndim != 5 or volume.shape[0] != 1:
        raise ValueError(f"volume must be (1, C, X, Y, Z), got shape {tuple(volume.shape)}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
    size = tuple(volume.shape[2:])
    pad = [max(0, w - s) for w, s in zip(window, size)]
    if any(pad):
        volume = F.pad(volume, [v for p in reversed(pad) for v in (0, p)])
    full = tuple(volume.shape[2:])
    weights = blend_weights(tuple(window), blend).to(volume.device)
    corners = list(itertools.product(*(window_starts(n, w, overlap) for n, w in zip(full, window))))
    out = norm = None
    for b in range(0, len(corners), batch_size):
        chunk = corners[b : b + batch_size]
        slices = [tuple(slice(c, c + w) for c, w in zip(corner, window)) for corner in chunk]
        pred = predictor(torch.cat([volume[(0, ...) + s][None] for s in slices])).float()
        if out is None:  # the predictor decides the channel count K
            out = volume.new_zeros((pred.shape[1], *full), dtype=torch.float32)
            norm = volume.new_zeros(full, dtype=torch.float32)
        for p, s in zip(pred, slices):
            out[(slice(None), *s)] += p * weights
            norm[s] += weights
    out = out / norm  # every voxel is covered at least once
    return out[:, : size[0], : size[1], : size[2]][None]


def predict_volume(
    model: nn.Module,
    inputs: torch.Tensor,
    window: tuple[int, int, int],
    overlap: float = 0.5,
    blend: str = "gaussian",
    batch_size: int = 4,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Infection probability of a whole volume from a patch-trained 1-class model.

    Args:
        model: returns logits ``(B, 1, *window)`` in eval mode.
        inputs: ``(1, 1, X, Y, Z)`` on the CPU (``CTVolume.inputs()``); only windows are
            moved to ``device``, so a whole volume never has to fit on the GPU.
        window, overlap, blend, batch_size: as :func:`sliding_window`.
        device: where the model runs (default: where its parameters are).

    Returns:
        float32 ``(X, Y, Z)`` probabilities on the CPU.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()

    def predictor(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(x.to(device))).cpu()

    return sliding_window(inputs, predictor, window, overlap, blend, batch_size)[0, 0]
