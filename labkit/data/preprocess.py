"""Preprocessing variants from the reports, on batches ``(B, C, H, W)``.

* per-image min-max scaling to [0, 1] (report 002);
* ImageNet mean/std normalisation with the grey image replicated to 3 channels, as a
  pretrained encoder expects (reports 002, 003);
* one-hot masks with 2 channels, (background, infection), for a softmax head (report 002);
* "lung only" input: the image multiplied by the lung mask (report 004).
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_4d(x: torch.Tensor, arg: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{arg}: expected a (B, C, H, W) tensor, got {shape}")


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0-255 -> float32 in [0, 1] (``pixel / 255``); float input is returned as float32."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def minmax_scale(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each image separately to [0, 1]: ``(x - min) / (max - min)``.

    A constant image (max == min) becomes all zeros instead of dividing by zero.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H, W)`` float32; min and max are taken over (C, H, W).
    """
    _check_4d(x, "x")
    x = to_unit(x) if x.dtype == torch.uint8 else x.float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation; a grey image is first replicated to 3 channels.

    Args:
        x: images in [0, 1] (float) or 0-255 (uint8), 1 or 3 channels.

    Shape:
        ``(B, 1 or 3, H, W)`` -> ``(B, 3, H, W)`` float32.
    """
    _check_4d(x, "x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x: expected 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    x = to_unit(x)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def one_hot(mask: torch.Tensor, num_classes: int = 2) -> torch.Tensor:
    """Integer mask -> one channel per class: ``(background, infection)`` for 2 classes.

    Shape:
        ``(B, 1, H, W)`` or ``(B, H, W)`` with values in ``0..num_classes-1`` ->
        ``(B, num_classes, H, W)`` float32.
    """
    if mask.ndim == 4:
        if mask.shape[1] != 1:
            raise ValueError(f"mask: expected 1 channel, got shape {tuple(mask.shape)}")
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise ValueError(f"mask: expected (B, 1, H, W) or (B, H, W), got {tuple(mask.shape)}")
    if mask.is_floating_point() and not torch.equal(mask, mask.round()):
        raise ValueError("mask: expected integer class labels, got fractional values")
    labels = mask.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"mask: values must lie in 0..{num_classes - 1}, got {int(labels.min())}..{int(labels.max())}"
        )
    return torch.nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def apply_lung_mask(image: torch.Tensor, lung: torch.Tensor) -> torch.Tensor:
    """Keep only the lungs: ``image * lung`` (report 004's "lung only" input).

    Shape:
        image ``(B, C, H, W)``, lung ``(B, 1, H, W)`` {0, 1} -> ``(B, C, H, W)``.
    """
    _check_4d(image, "image")
    _check_4d(lung, "lung")
    if lung.shape[0] != image.shape[0] or lung.shape[-2:] != image.shape[-2:] or lung.shape[1] != 1:
        raise ValueError(
            f"lung: expected shape ({image.shape[0]}, 1, {image.shape[2]}, {image.shape[3]}) "
            f"to match image {tuple(image.shape)}, got {tuple(lung.shape)}"
        )
    return image * lung.to(image.dtype)
