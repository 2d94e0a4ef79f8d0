"""Batch augmentation with per-sample random parameters (CPU or GPU tensors).

torchvision's ``transforms.v2`` draws one parameter set per call, so a whole batch would get
the same flip and rotation. Here every sample draws its own parameters, and the image and its
masks go through the same geometry: images with bilinear sampling, masks with nearest (they
stay {0, 1}), both with reflective fill at the borders so the mask keeps matching the image.

Report 003's setting is ``Augment.report003()``: horizontal flip p=0.5, shift-scale-rotate
(+-10 % shift, +-10 % scale, +-15 degrees), brightness/contrast +-20 %, Gaussian noise.
labkit's readings where the syllabus is silent: each step's probability 0.5, the noise's
standard deviation 0.01-0.03, and "+-10 %" for both the shift and the scale.
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
    ``(B, C, H, W)``, uint8 in [0, 255] or float in [0, 1], and masks ``(B, 1, H, W)`` (uint8,
    bool or float, ``None`` is passed through). The image comes back float32 in [0, 1], each
    mask in its own dtype unless ``mask_dtype`` names one. With no masks it returns the image
    alone.
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
        """labkit's reading of report 002's "flips": horizontal and vertical flips only."""
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

    def __call__(
        self,
        image: torch.Tensor,
        *masks: torch.Tensor | None,
        generator: torch.Generator | int | None = None,
        mask_dtype: torch.dtype | None = None,
    ):
        params = self.sample(image.shape[0], generator)
        return self.apply(params, image, *masks, mask_dtype=mask_dtype)

    def apply(
        self,
        params: AugmentParams,
        image: torch.Tensor,
        *masks: torch.Tensor | None,
        mask_dtype: torch.dtype | None = None,
    ):
        """Apply drawn parameters: geometry to image and masks, intensity to the image only.

        ``mask_dtype`` (e.g. ``torch.float32``) returns the masks in that dtype instead of
        their own: cheaper than converting them afterwards (float -> uint8 is slow on a CPU).
        """
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
        h, w = image.shape[-2:]
        present = [mk for mk in masks if mk is not None]
        # Private copies that the steps below update in place. uint8 inputs are flipped as
        # bytes (~20x cheaper than floats on a CPU) and become float32 once, after the flips;
        # each tensor stays separate and contiguous, so the float ones are also the outputs:
        # every fresh multi-MB tensor costs page faults on a CPU, so none is made twice.
        small = image.dtype == torch.uint8 and all(
            mk.dtype in (torch.uint8, torch.bool) for mk in present
        )
        work = [t.to(torch.uint8 if small else torch.float32, copy=True) for t in (image, *present)]
        # Which samples each step touches, decided on the CPU (no GPU sync), and every
        # per-sample number, sent to the device in one copy.
        hflip, vflip, affine, color, noise = (
            p.nonzero().flatten()
            for p in (params.hflip, params.vflip, params.affine, params.color, params.noise)
        )
        theta = _affine_theta(params, h, w)[affine]  # (n, 2, 3)
        hflip_d, vflip_d, affine_d, color_d, noise_d, theta, c, br, sigma = _to_device(
            dev, hflip, vflip, affine, color, noise, theta,
            params.contrast[color], params.brightness[color], params.sigma[noise],
        )  # fmt: skip

        for idx, dim in ((hflip_d, -1), (vflip_d, -2)):
            if len(idx):  # exact: no resampling
                for t in work:
                    _update(t, idx, lambda t, sel, dim=dim: t.flip(dim))
        x, *ms = (t.float() for t in work)  # x (B, C, H, W), each mask (B, 1, H, W)
        if image.dtype == torch.uint8:
            x.div_(255.0)  # in place: x is a private copy either way
        if len(affine):
            _warp(x, ms, affine_d, theta)
        if len(color):
            c, br = c.view(-1, 1, 1, 1), br.view(-1, 1, 1, 1)

            def color_fn(t: torch.Tensor, sel) -> torch.Tensor:  # contrast around each mean
                mean = t.mean(dim=(1, 2, 3), keepdim=True)
                return t.sub_(mean).mul_(c[sel]).add_(mean).add_(br[sel]).clamp_(0, 1)

            _update(x, color_d, color_fn)
        if len(noise):
            g = torch.Generator(device=dev).manual_seed(params.noise_seed)
            sigma = sigma.view(-1, 1, 1, 1)

            def noise_fn(t: torch.Tensor, sel) -> torch.Tensor:
                z = torch.randn(t.shape, generator=g, device=dev)
                return t.add_(z.mul_(sigma[sel])).clamp_(0, 1)

            _update(x, noise_d, noise_fn)

        warped = iter(ms)  # each mask in mask_dtype or its own (no copy where already so)
        out = [None if mk is None else next(warped).to(mask_dtype or mk.dtype) for mk in masks]
        return x if not masks else (x, *out)


def _update(t: torch.Tensor, idx: torch.Tensor, fn) -> None:
    """``t[idx] = fn(t[idx], sel)`` in place; ``sel`` picks those samples' rows of a step's
    parameters (``c[sel]``). ``idx`` is a long tensor on ``t``'s device.

    On a GPU: one ``index_select``, one call over the selected samples, one ``index_copy_``
    (no per-sample launches). On a CPU: one call per sample, on a view of ``t``, written back
    only if ``fn`` did not work in place. A CPU has no launch cost to save, while gathering
    the selected samples into a new multi-MB tensor and scattering them back costs copies
    (``index_copy_`` of uint8 is element by element: 1.8 ms for 16 flips at 256 px, against
    0.2 ms per sample) and page faults on the fresh memory each batch (RESULTS.md, data path).
    """
    if t.device.type != "cpu":
        t.index_copy_(0, idx, fn(t.index_select(0, idx), slice(None)))
        return
    for j, i in enumerate(idx.tolist()):
        view = t[i : i + 1]
        out = fn(view, slice(j, j + 1))
        if out.data_ptr() != view.data_ptr():
            view.copy_(out)


def _warp(x: torch.Tensor, masks: list[torch.Tensor], idx: torch.Tensor, theta: torch.Tensor):
    """Shift-scale-rotate samples ``idx`` of ``x`` (bilinear) and ``masks`` (nearest, so they
    stay {0, 1}) in place, with one sampling grid per sample (``theta`` ``(len(idx), 2, 3)``)
    and reflective borders. The masks go through one ``grid_sample`` call as channels of one
    tensor (one call over 2 channels costs 0.65x two calls over 1)."""
    h, w = x.shape[-2:]

    def warp(t: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
        return F.grid_sample(t, grid, mode=mode, padding_mode="reflection", align_corners=False)

    def both(xs: torch.Tensor, ms: list[torch.Tensor], grid: torch.Tensor):
        if len(ms) > 1:  # nearest copies source pixels: channels stay what they were, exactly
            return warp(xs, grid, "bilinear"), warp(torch.cat(ms, 1), grid, "nearest").split(1, 1)
        return warp(xs, grid, "bilinear"), [warp(mk, grid, "nearest") for mk in ms]

    if x.device.type != "cpu":  # batched: see _update
        xs, ms = both(x.index_select(0, idx), [mk.index_select(0, idx) for mk in masks],
                      _affine_grid(theta, h, w))  # fmt: skip
        for t, out in zip((x, *masks), (xs, *ms)):
            t.index_copy_(0, idx, out)
        return
    for j, i in enumerate(idx.tolist()):  # per sample, on views: see _update
        rows = [t[i : i + 1] for t in (x, *masks)]
        xs, ms = both(rows[0], rows[1:], _affine_grid(theta[j : j + 1], h, w))
        for view, out in zip(rows, (xs, *ms)):
            view.copy_(out)


def _to_device(dev: torch.device, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Small CPU tensors on ``dev``: on a GPU, one asynchronous copy from pinned memory
    instead of one blocking copy each (each blocking copy stops the CPU from preparing
    the next batch while the GPU works)."""
    if dev.type == "cpu":
        return list(tensors)
    if dev.type != "cuda":  # e.g. Apple's MPS: unified memory, and no float64 there
        return [t.to(dev) for t in tensors]
    return _in_one_copy(tensors, lambda flat: flat.pin_memory().to(dev, non_blocking=True))


def _in_one_copy(tensors: tuple[torch.Tensor, ...], move) -> list[torch.Tensor]:
    """``tensors`` flattened into one float64 tensor (exact for indices below 2**53), moved
    by ``move``, then split back into their shapes and dtypes."""
    flat = move(torch.cat([t.to(torch.float64).flatten() for t in tensors]))
    out, start = [], 0
    for t in tensors:
        out.append(flat[start : start + t.numel()].view(t.shape).to(t.dtype))
        start += t.numel()
    return out


def _affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (n, 1, h, w), align_corners=False)``, 5-10x faster on a CPU.

    Each output pixel's normalised centre ``(x, y)`` maps to ``theta @ (x, y, 1)``; written as
    two broadcast multiply-adds instead of affine_grid's batched matmul over a copied base grid.

    Shape:
        theta ``(n, 2, 3)`` -> grid ``(n, H, W, 2)``.
    """
    n, dev = theta.shape[0], theta.device
    xs = (torch.arange(w, device=dev, dtype=theta.dtype) * 2 + 1) / w - 1  # (W,) pixel centres
    ys = ((torch.arange(h, device=dev, dtype=theta.dtype) * 2 + 1) / h - 1)[:, None]  # (H, 1)
    t = theta.view(n, 2, 3, 1, 1)
    grid = torch.empty(n, h, w, 2, device=dev, dtype=theta.dtype)
    for k in (0, 1):  # (n, 1, W) + (n, H, 1) broadcast straight into the strided output
        torch.add(t[:, k, 0] * xs + t[:, k, 2], t[:, k, 1] * ys, out=grid[..., k])
    return grid


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
