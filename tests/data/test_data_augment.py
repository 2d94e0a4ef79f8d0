"""Batch augmentation: same geometry for image and masks, per-sample parameters, determinism."""

from __future__ import annotations

import pytest
import torch

from labkit.data.augment import Augment

GEOMETRY_ONLY = {"p_color": 0.0, "p_noise": 0.0}


def blocks(b: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Images made of random bright rectangles on a dark background, ``(B, 1, H, W)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((b, 1, size, size), 0.1)
    for i in range(b):
        for _ in range(3):
            y0, x0 = torch.randint(0, size - 8, (2,), generator=g).tolist()
            h, w = torch.randint(4, 9, (2,), generator=g).tolist()
            x[i, 0, y0 : y0 + h, x0 : x0 + w] = 0.9
    return x


def test_geometry_of_image_and_mask_stays_aligned():
    # The mask is made from the image itself: after the transform, thresholding the warped
    # image must give (almost) the warped mask. Only boundary pixels may differ (bilinear
    # for the image vs nearest for the mask).
    image = blocks()
    mask = (image > 0.5).to(torch.uint8)
    aug = Augment(hflip=0.5, vflip=0.5, p_affine=1.0, **GEOMETRY_ONLY)
    out, out_mask = aug(image, mask, generator=123)
    assert out_mask.dtype == torch.uint8 and set(out_mask.unique().tolist()) <= {0, 1}
    agree = ((out > 0.5).to(torch.uint8) == out_mask).float().mean()
    assert agree > 0.97
    moved = (out_mask != mask).float().mean()
    assert moved > 0.05  # the transform really moved things (the check above is not vacuous)


def test_flips_are_exact_and_shared_by_all_masks():
    image = blocks(4)
    lung = (image > 0.5).float()
    infection = (image[..., :16] > 0.5).float()  # wrong width: rejected below
    aug = Augment(hflip=1.0, vflip=1.0, p_affine=0.0, **GEOMETRY_ONLY)
    out, out_lung, none = aug(image, lung, None, generator=0)
    assert torch.equal(out, image.flip(-1).flip(-2)) and torch.equal(
        out_lung, lung.flip(-1).flip(-2)
    )
    assert none is None
    with pytest.raises(ValueError, match=r"masks\[0\]"):
        aug(image, infection)


def test_parameters_differ_within_a_batch():
    image = blocks(1).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    out = Augment(p_affine=1.0, p_color=1.0, p_noise=0.0)(image, generator=7)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) == 16  # every sample drew its own rotation, zoom, shift, contrast
    params = Augment.report003().sample(64, generator=7)
    assert params.angle.std() > 5 and 0.3 < params.hflip.float().mean() < 0.7
    assert params.angle.abs().max() <= 15 and (params.scale - 1).abs().max() <= 0.1
    assert params.shift_x.abs().max() <= 0.1 and (params.contrast - 1).abs().max() <= 0.2


def test_deterministic_under_a_seed():
    image, mask = blocks(), (blocks() > 0.5).float()
    aug = Augment.report003()
    a = aug(image, mask, generator=torch.Generator().manual_seed(3))
    b = aug(image, mask, generator=torch.Generator().manual_seed(3))
    c = aug(image, mask, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_intensity_changes_touch_the_image_only():
    image = blocks()
    mask = (image > 0.5).float()
    aug = Augment(hflip=0.0, p_affine=0.0, p_color=1.0, p_noise=1.0)
    out, out_mask = aug(image, mask, generator=1)
    assert torch.equal(out_mask, mask)
    assert not torch.equal(out, image) and out.min() >= 0 and out.max() <= 1
    # noise is zero-mean: the residual after undoing brightness/contrast is small but non-zero
    assert (out - image).abs().mean() < 0.3


def test_rotation_by_known_angle_matches_rot90():
    # 90 degrees with scale 1 and no shift is an exact quarter turn on a square grid.
    image = blocks(2, size=16)
    aug = Augment(hflip=0.0, p_affine=1.0, **GEOMETRY_ONLY)
    params = aug.sample(2, generator=0)
    params.angle[:] = 90.0
    params.scale[:] = 1.0
    params.shift_x[:] = 0.0
    params.shift_y[:] = 0.0
    out, mask = aug.apply(params, image, (image > 0.5).float())
    expected = torch.rot90(image, k=1, dims=(-2, -1))
    turned = (
        expected
        if torch.allclose(out, expected, atol=1e-4)
        else torch.rot90(image, k=-1, dims=(-2, -1))
    )
    assert torch.allclose(out, turned, atol=1e-4) and torch.equal(mask, (turned > 0.5).float())


def test_uint8_image_is_scaled_and_bad_arguments_rejected():
    image = (blocks(2) * 255).to(torch.uint8)
    out = Augment(**GEOMETRY_ONLY)(image, generator=0)
    assert out.dtype == torch.float32 and out.max() <= 1
    with pytest.raises(ValueError, match="hflip"):
        Augment(hflip=1.5)
    with pytest.raises(ValueError, match="rotate"):
        Augment(rotate=-1)
    with pytest.raises(ValueError, match="image"):
        Augment()(torch.zeros(3, 8, 8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu_geometry():
    image = blocks()
    mask = (image > 0.5).float()
    aug = Augment(hflip=0.5, vflip=0.5, p_affine=1.0, **GEOMETRY_ONLY)
    cpu = aug(image, mask, generator=5)
    gpu = aug(image.cuda(), mask.cuda(), generator=5)
    assert gpu[0].is_cuda and torch.allclose(gpu[0].cpu(), cpu[0], atol=1e-4)
    assert (gpu[1].cpu() != cpu[1]).float().mean() < 0.01


@pytest.mark.parametrize("h,w", [(32, 32), (24, 40), (7, 5)])
def test_fast_affine_grid_matches_torch(h, w):
    # Oracle: torch's own affine_grid, which the augmentation used to call.
    from labkit.data.augment import _affine_grid

    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(h * w))
    expected = torch.nn.functional.affine_grid(theta, [5, 1, h, w], align_corners=False)
    assert torch.allclose(_affine_grid(theta, h, w), expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_inputs_are_left_untouched_and_masks_keep_their_dtype(dtype):
    # The steps update private copies in place: the caller's tensors must not change.
    image = blocks(6)
    image_in = (image * 255).to(torch.uint8) if dtype == torch.uint8 else image.clone()
    lung = (image > 0.5).to(dtype)
    infection = (image[..., :1, :, :] > 0.8).to(dtype)
    before = [t.clone() for t in (image_in, lung, infection)]
    out, out_lung, out_none, out_inf = Augment(p_affine=1.0, p_color=1.0, p_noise=1.0)(
        image_in, lung, None, infection, generator=2
    )
    for t, b in zip((image_in, lung, infection), before):
        assert torch.equal(t, b)
    assert out.dtype == torch.float32 and out_none is None
    for o, m in ((out_lung, lung), (out_inf, infection)):
        assert o.dtype == dtype and o.shape == m.shape and o.is_contiguous()
        assert set(o.unique().tolist()) <= {0, 1}
    assert not torch.equal(out_lung, lung)  # warped ...
    assert ((out_inf == 1) & (out_lung == 0)).sum() <= 0.02 * out_inf.numel()  # ... together


def test_each_step_touches_only_the_samples_whose_coin_came_up():
    image = blocks(8)
    aug = Augment(hflip=0.5, p_affine=0.5, p_color=0.5, p_noise=0.5)
    params = aug.sample(8, generator=11)
    untouched = ~(params.hflip | params.vflip | params.affine | params.color | params.noise)
    changed = params.hflip | params.affine | params.color | params.noise
    assert untouched.any() and changed.any()  # this seed exercises both kinds of samples
    out = aug.apply(params, image)
    assert torch.equal(out[untouched], image[untouched])
    diff = (out - image).flatten(1).abs().amax(1)
    assert (diff[changed] > 0).all()


def test_parameters_travel_in_one_copy_exactly():
    # The CUDA path packs indices and floats into one float64 tensor for a single transfer;
    # here the "transfer" is a real copy on the CPU, and everything must come back exact.
    from labkit.data.augment import _in_one_copy

    params = Augment.report003().sample(32, generator=3)
    parts = (
        params.affine.nonzero().flatten(),
        torch.tensor([2**40 + 1, 0]),
        torch.empty(0, dtype=torch.long),
        torch.randn(5, 2, 3),
        params.sigma,
    )
    moved = []
    back = _in_one_copy(parts, lambda flat: moved.append(flat) or flat.clone())
    assert len(moved) == 1 and moved[0].numel() == sum(p.numel() for p in parts)
    for got, want in zip(back, parts):
        assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)


@pytest.mark.parametrize("mask_dtype", [None, torch.float32, torch.uint8, torch.bool])
def test_uint8_inputs_give_the_same_batch_as_float_inputs(mask_dtype):
    # uint8 inputs are flipped as bytes and converted afterwards; float inputs are converted
    # first. Flips are exact and everything after them is the same float work, so with the
    # same parameters both routes must agree exactly, for every requested mask dtype.
    image = (blocks(8, 48, seed=3) * 255).to(torch.uint8)
    lung = (image > 100).to(torch.uint8)
    infection = (image[..., :24] > 100).to(torch.uint8).repeat(1, 1, 1, 2)
    aug = Augment(hflip=0.5, vflip=0.5, p_affine=0.5, p_color=0.5, p_noise=0.5)
    params = aug.sample(8, generator=5)
    assert params.hflip.any() and params.affine.any() and params.noise.any()
    got = aug.apply(params, image, lung, infection, mask_dtype=mask_dtype)
    want = aug.apply(params, image.float() / 255, lung.float(), infection.float())
    assert torch.equal(got[0], want[0]) and got[0].dtype == torch.float32
    for g, w, m in zip(got[1:], want[1:], (lung, infection)):
        assert g.dtype == (mask_dtype or m.dtype) and g.is_contiguous()
        assert torch.equal(g.float(), w)
