"""Preprocessing from the reports, checked against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from labkit.data.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_lung_mask,
    imagenet_normalize,
    minmax_scale,
    one_hot,
)


def test_minmax_scale_is_per_image():
    x = torch.tensor([[[[10.0, 20.0], [30.0, 50.0]]], [[[-1.0, -1.0], [-1.0, 3.0]]]])
    out = minmax_scale(x)
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.allclose(out[1, 0], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(
        minmax_scale(torch.full((1, 1, 2, 2), 5.0)), torch.zeros(1, 1, 2, 2)
    )  # constant
    u8 = torch.tensor([[[[0, 51], [102, 102]]]], dtype=torch.uint8)
    assert torch.allclose(minmax_scale(u8)[0, 0], torch.tensor([[0.0, 0.5], [1.0, 1.0]]))


def test_imagenet_normalize_replicates_grey():
    grey = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    out = imagenet_normalize(grey)
    assert out.shape == (1, 3, 1, 2)
    for c in range(3):
        assert out[0, c, 0, 0] == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], rel=1e-5)
        assert out[0, c, 0, 1] == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], rel=1e-5)
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.allclose(imagenet_normalize(rgb)[:, 1], (rgb[:, 1] - 0.456) / 0.224)
    with pytest.raises(ValueError, match="channels"):
        imagenet_normalize(torch.rand(1, 2, 4, 4))


def test_one_hot_background_and_infection():
    mask = torch.tensor([[[[0, 1], [1, 0]]]], dtype=torch.uint8)
    out = one_hot(mask)
    assert out.shape == (1, 2, 2, 2) and out.dtype == torch.float32
    assert torch.equal(out[0, 0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # background
    assert torch.equal(out[0, 1], mask[0, 0].float())  # infection
    assert torch.equal(out.sum(1), torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="0..1"):
        one_hot(torch.full((1, 1, 2, 2), 2))
    with pytest.raises(ValueError, match="fractional"):
        one_hot(torch.full((1, 1, 2, 2), 0.5))


def test_apply_lung_mask():
    image = torch.rand(2, 3, 4, 4)
    lung = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    lung[:, :, 1:3, 1:3] = 1
    out = apply_lung_mask(image, lung)
    assert torch.equal(out[:, :, 1:3, 1:3], image[:, :, 1:3, 1:3])
    outside = out.clone()
    outside[:, :, 1:3, 1:3] = 0
    assert torch.count_nonzero(outside) == 0
    with pytest.raises(ValueError, match="lung"):
        apply_lung_mask(image, lung[:1])
