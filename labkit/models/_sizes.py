"""Input checks shared by every labkit model: shape, channels and the stride rule.

A U-Net halves the image ``depth`` times on the way down and doubles it again on the way
up, so the skip connections only line up when height and width are multiples of the
model's total stride (``2 ** depth``; 32 for the pretrained encoders). Instead of letting
a concatenation fail deep inside the network with a cryptic shape error, every model
calls :func:`fit_to_stride` first: it either raises a ``ValueError`` that names the
nearest valid sizes, or (with ``pad=True``) pads the input up to the next multiple and
lets :func:`crop_back` cut the output back to the original size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nearest_valid_sizes(size: int, stride: int) -> tuple[int, int]:
    """The multiples of ``stride`` just below and just above ``size``.

    Args:
        size: a height or width in pixels.
        stride: the model's total stride.

    Returns:
        ``(smaller, larger)``; ``smaller`` is at least ``stride``.
    """
    smaller = max(stride, (size // stride) * stride)
    larger = (size // stride + 1) * stride
    return smaller, larger


def check_input(x: Tensor, in_channels: int | None, name: str) -> None:
    """Raise a ``ValueError`` unless ``x`` is a ``(B, in_channels, H, W)`` float tensor."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{name}: input must have shape (B, C, H, W), got {tuple(x.shape)}; "
            "add a batch dimension with x[None] for a single image"
        )
    if in_channels is not None and x.shape[1] != in_channels:
        raise ValueError(
            f"{name}: input has {x.shape[1]} channels but the model was built with "
            f"in_channels={in_channels} (got shape {tuple(x.shape)})"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name}: input must be a float tensor, got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 255"
        )


def fit_to_stride(
    x: Tensor,
    stride: int,
    *,
    pad: bool,
    name: str,
    in_channels: int | None = None,
) -> tuple[Tensor, tuple[int, int]]:
    """Check ``x`` and make its height and width multiples of ``stride``.

    Args:
        x: the model input.
        stride: the model's total stride (``2 ** number of down-sampling steps``).
        pad: if True, zero-pad the bottom and right edges up to the next multiple instead
            of raising.
        name: the model's name, used in error messages.
        in_channels: the expected number of channels (None: do not check).

    Returns:
        ``(x, (H, W))``: the (possibly padded) input and the original size, for
        :func:`crop_back`.

    Raises:
        ValueError: wrong shape or channels, or a size that is not a multiple of
            ``stride`` while ``pad`` is False. The message names the nearest valid sizes.

    Shape:
        x: ``(B, C, H, W)`` -> ``(B, C, H', W')`` with ``H' = ceil(H / stride) * stride``.
    """
    check_input(x, in_channels, name)
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height % stride == 0 and width % stride == 0:
        return x, (height, width)
    if pad:
        pad_h = nearest_valid_sizes(height, stride)[1] - height if height % stride else 0
        pad_w = nearest_valid_sizes(width, stride)[1] - width if width % stride else 0
        # F.pad takes (left, right, top, bottom) for the last two dimensions.
        return F.pad(x, (0, pad_w, 0, pad_h)), (height, width)
    bad = []
    for label, size in (("height", height), ("width", width)):
        if size % stride:
            smaller, larger = nearest_valid_sizes(size, stride)
            bad.append(f"{label} {size} (nearest valid: {smaller} or {larger})")
    raise ValueError(
        f"{name}: input height and width must be multiples of the model's stride "
        f"{stride}, got {' and '.join(bad)}. Use a size that is a multiple of {stride} (in "
        "`labkit train`: --size), or, in Python, build the model with pad=True to pad the "
        "input and crop the output back."
    )


def crop_back(out: Tensor | list[Tensor], size: tuple[int, int]) -> Tensor | list[Tensor]:
    """Cut outputs (a tensor or a deep-supervision list) back to ``size = (H, W)``."""
    height, width = size
    if isinstance(out, list):
        return [o[..., :height, :width] for o in out]
    return out[..., :height, :width]


def upsample_to(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize of ``x`` to ``size`` (used by the deep-supervision heads)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
