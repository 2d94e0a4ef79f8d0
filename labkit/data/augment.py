"""Batch augmentation with per-sample random parameters (CPU or GPU tensors).

torchvision's ``transforms.v2`` draws one parameter set per call, so a whole batch would get
the same flip and rotation. Here every sample draws its own parameters, and the image and its
masks go through the same geometry: images with bilinear sampling, masks with nearest (they
stay {0, 1}), both with reflective fill at the borders so the mask keeps matching the image.

Report 003's setting is ``Augment.report003()``: horizontal flip p=0.5, shift-scale-rotate
(+-10 % shift, +-10 % scale, +-15 degrees), brightness/contrast +-20 %, Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentParams:
    """Per-sample parameters, each a CPU tensor of shape ``(B,)``."""

    hflip: torch.Tensor  # bool
    vflip: torch.Tensor  # bool
    affine: torch.Tensor  # bool: shift-scale-rotate this sample
    angle: torch.Tensor  # degrees
    scale: torch.Tensor  # zoom factor, 1 = unchanged
    shift_x: torch.Tensor  # fraction of the width
    shift_y: torch.Tensor  # fraction of the height
    color: torch.Tensor  # bool: change brightness/contrast
    contrast: torch.Tensor  # factor around the image mean, 1 = unchanged
    brightness: torch.Tensor  # added offset, on the [0, 1] scale
    noise: torch.Tensor  # bool: add Gaussian noise
    sigma: torch.Tensor  # noise standard deviation, on the [0, 1] scale
    noise_seed: int  # seeds the noise generator on the data's device


class Augment:
    """Random flips, shift-scale-rotate, brightness/contrast and noise, per sample.

    Args:
        hflip: probability of a left-right flip.
        vflip: probability of an up-down flip.
        p_affine: probability of shift-scale-rotate.
        shift: largest shift, as a fraction of the image size.
        scale: largest zoom change, as a fraction (0.1 = 0.9x to 1.1x).
        rotate: largest rotation in degrees.
        p_color: probability of a brightness/contrast change (image only).
        brightness: largest brightness offset on the [0, 1] scale.
        contrast: largest relative contrast change (0.2 = 0.8x to 1.2x).
        p_noise: probability of Gaussian noise (image only).
        noise_std: ``(low, high)`` range of the noise standard deviation on the [0, 1] scale.

    Call it as ``image, lung, target = aug(image, lung, target, generator=g)`` with images
    float ``(B, C, H, W)`` in [0, 1] and masks ``(B, 1, H, W)`` (uint8 or float, ``None`` is
    passed through). With no masks it returns the image alone.
    """

    def __init__(
        self,
        hflip: float = 0.5,
        vflip: float = 0.0,
        p_affine: float = 0.5,
        shift: float = 0.1,
        scale: float = 0.1,
        rotate: float = 15.0,
        p_color: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        p_noise: float = 0.5,
        noise_std: tuple[float, float] = (0.01, 0.03),
    ) -> None:
        for name, p in (
            ("hflip", hflip),
            ("vflip", vflip),
            ("p_affine", p_affine),
            ("p_color", p_color),
            ("p_noise", p_noise),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {p}")
        for name, v in (
            ("shift", shift),
            ("scale", scale),
            ("brightness", brightness),
            ("contrast", contrast),
        ):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name}: expected a fraction in [0, 1), got {v}")
        if not 0.0 <= rotate <= 180.0:
            raise ValueError(f"rotate: expected degrees in [0, 180], got {rotate}")
        if len(noise_std) != 2 or not 0.0 <= noise_std[0] <= noise_std[1]:
            raise ValueError(
                f"noise_std: expected (low, high) with 0 <= low <= high, got {noise_std}"
            )
        self.hflip, self.vflip, self.p_affine = hflip, vflip, p_affine
        self.shift, self.scale, self.rotate = shift, scale, rotate
        self.p_color, self.brightness, self.contrast = p_color, brightness, contrast
        self.p_noise, self.noise_std = p_noise, tuple(noise_std)

    @classmethod
    def report003(cls) -> Augment:
        """Report 003's training augmentation (see the module docstring)."""
        return cls()

    @classmethod
    def flips(cls) -> Augment:
        """Report 002's augmentation: horizontal and vertical flips only."""
        return cls(hflip=0.5, vflip=0.5, p_affine=0.0, p_color=0.0, p_noise=0.0)

    def __repr__(self) -> str:
        return (
            f"Augment(hflip={self.hflip}, vflip={self.vflip}, p_affine={self.p_affine}, "
            f"shift={self.shift}, scale={self.scale}, rotate={self.rotate}, p_color={self.p_color}, "
            f"brightness={self.brightness}, contrast={self.contrast}, p_noise={self.p_noise}, "
            f"noise_std={self.noise_std})"
        )

    def sample(
        self, batch_size: int, generator: torch.Generator | int | None = None
    ) -> AugmentParams:
        """Draw one parameter set per sample (on the CPU; they are tiny)."""
        g = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator

        def coin(p: float) -> torch.Tensor:
            return torch.rand(batch_size, generator=g) < p

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(batch_size, generator=g)

        return AugmentParams(
            hflip=coin(self.hflip),
            vflip=coin(self.vflip),
            affine=coin(self.p_affine),
            angle=uniform(-self.rotate, self.rotate),
            scale=uniform(1 - self.scale, 1 + self.scale),
            shift_x=uniform(-self.shift, self.shift),
            shift_y=uniform(-self.shift, self.shift),
            color=coin(self.p_color),
            contrast=uniform(1 - self.contrast, 1 + self.contrast),
            brightness=uniform(-self.brightness, self.brightness),
            noise=coin(self.p_noise),
            sigma=uniform(*self.noise_std),
            noise_seed=int(torch.randint(0, 2**62, (1,), generator=g)),
        )

    def __call__(self, image: torch.Tensor, *masks: torch.Tensor | None, generator=None):
        params = self.sample(image.shape[0], generator)
        return self.apply(params, image, *masks)

    def apply(self, params: AugmentParams, image: torch.Tensor, *masks: torch.Tensor | None):
        """Apply drawn parameters: geometry to image and masks, intensity to the image only."""
        if image.ndim != 4:
            raise ValueError(f"image: expected (B, C, H, W), got shape {tuple(image.shape)}")
        b, dev = image.shape[0], image.device
        for i, m in enumerate(masks):
            if m is not None and (
                m.ndim != 4 or m.shape[0] != b or m.shape[-2:] != image.shape[-2:]
            ):
                raise ValueError(
                    f"masks[{i}]: expected shape ({b}, 1, {image.shape[2]}, {image.shape[3]}), got {tuple(m.shape)}"
                )
        x = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        ms = [None if m is None else m.float() for m in masks]
        h, w = x.shape[-2:]

        # Each step runs only on the samples whose coin came up (indices on the CPU: no sync).
        for flag, dim in ((params.hflip, -1), (params.vflip, -2)):
            idx = flag.nonzero().flatten()
            x = _on(idx, x, lambda t, dim=dim: t.flip(dim))  # exact: no resampling
            ms = [_on(idx, m, lambda t, dim=dim: t.flip(dim)) for m in ms]
        idx = params.affine.nonzero().flatten()
        if len(idx):
            theta = _affine_theta(params, h, w)[idx].to(dev)
            grid = F.affine_grid(theta, [len(idx), 1, h, w], align_corners=False)

            def warp(t: torch.Tensor, mode: str) -> torch.Tensor:
                # One grid for image and masks: same geometry. Nearest keeps masks {0, 1}.
                return F.grid_sample(
                    t, grid, mode=mode, padding_mode="reflection", align_corners=False
                )

            x = _on(idx, x, lambda t: warp(t, "bilinear"))
            ms = [_on(idx, m, lambda t: warp(t, "nearest")) for m in ms]
        idx = params.color.nonzero().flatten()
        if len(idx):
            c = params.contrast[idx].to(dev).view(-1, 1, 1, 1)
            br = params.brightness[idx].to(dev).view(-1, 1, 1, 1)

            def color(t: torch.Tensor) -> torch.Tensor:
                mean = t.mean(dim=(1, 2, 3), keepdim=True)  # contrast around each image's mean
                return ((t - mean) * c + mean + br).clamp(0, 1)

            x = _on(idx, x, color)
        idx = params.noise.nonzero().flatten()
        if len(idx):
            g = torch.Generator(device=dev).manual_seed(params.noise_seed)
            sigma = params.sigma[idx].to(dev).view(-1, 1, 1, 1)

            def noise(t: torch.Tensor) -> torch.Tensor:
                return (t + sigma * torch.randn(t.shape, generator=g, device=dev)).clamp(0, 1)

            x = _on(idx, x, noise)
        out = [x] + [None if m is None else m.to(orig.dtype) for m, orig in zip(ms, masks)]
        return out[0] if not masks else tuple(out)


def _on(idx: torch.Tensor, t: torch.Tensor | None, fn) -> torch.Tensor | None:
    """``t`` with ``fn`` applied to the samples ``idx`` (a CPU index tensor) only."""
    if t is None or len(idx) == 0:
        return t
    if len(idx) == t.shape[0]:
        return fn(t)
    on_dev = idx.to(t.device, non_blocking=True)
    return t.index_copy(0, on_dev, fn(t.index_select(0, on_dev)))


def _affine_theta(params: AugmentParams, h: int, w: int) -> torch.Tensor:
    """``(B, 2, 3)`` matrices for ``affine_grid``: output pixel -> input pixel.

    The forward transform (rotate by ``angle``, zoom by ``scale``, then shift) is built in
    pixel-proportional coordinates so a rotation stays a rotation on non-square images, then
    inverted, because ``grid_sample`` looks up where each output pixel comes from.
    """
    a = params.angle * (math.pi / 180.0)
    s = params.scale
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    fwd = torch.zeros(len(a), 3, 3)
    fwd[:, 0, 0], fwd[:, 0, 1], fwd[:, 1, 0], fwd[:, 1, 1] = cos, -sin, sin, cos
    fwd[:, 0, 2] = 2 * params.shift_x * (w / 2)  # normalised width is 2 units
    fwd[:, 1, 2] = 2 * params.shift_y * (h / 2)
    fwd[:, 2, 2] = 1
    half = torch.diag(torch.tensor([w / 2, h / 2, 1.0]))  # normalised -> pixel-proportional
    inv = torch.linalg.inv(half) @ torch.linalg.inv(fwd) @ half
    return inv[:, :2, :]
