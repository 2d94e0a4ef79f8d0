"""The CT slice viewer: the segmentation viewer with one image per slice (lab 07)."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.widgets import slice_viewer


def test_the_slider_moves_through_slices_and_scores_each_one():
    volume = torch.randint(0, 256, (12, 10, 4), dtype=torch.uint8)
    truth = torch.zeros(12, 10, 4, dtype=torch.uint8)
    truth[2:6, 2:6, 1] = 1  # 16 voxels on slice 1 only
    probs = torch.zeros(12, 10, 4)
    probs[2:6, 2:4, 1] = 0.9  # 8 of them found: Dice 2 * 8 / (8 + 16)
    view = slice_viewer(volume, truth=truth, probs=probs, name="subject")
    assert view.index.description == "slice" and view.index.max == 3
    assert view.classes == ["no infection", "infection", "no infection", "no infection"]
    view.index.value = 1
    assert view.state["name"] == "subject slice 1" and view.state["truth_pixels"] == 16
    assert view.state["dice"] == pytest.approx(2 * 8 / 24)
    view.index.value = 0
    assert view.state["dice"] is None or math.isnan(view.state["dice"])  # empty truth


def test_a_mask_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"truth must be an \(X, Y, Z\) volume like volume"):
        slice_viewer(torch.zeros(4, 4, 3), truth=torch.zeros(4, 4, 2))
