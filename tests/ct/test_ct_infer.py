"""Sliding-window inference: window positions, blending, and whole-volume predictions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.ct.infer import blend_weights, predict_volume, sliding_window, window_starts


def test_window_starts_step_by_the_overlap_and_end_flush():
    assert window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert window_starts(10, 4, 0.0) == [0, 4, 6]  # the last window moves back to fit
    assert window_starts(4, 4, 0.5) == [0]
    assert window_starts(3, 4, 0.5) == [0]  # shorter than the window: one (padded) window
    assert window_starts(9, 8, 0.9) == [0, 1]  # the step is at least one voxel


def test_gaussian_weights_peak_at_the_centre_and_are_symmetric():
    w = blend_weights((5, 5, 3), "gaussian")
    assert w.shape == (5, 5, 3) and w[2, 2, 1] == w.max() == 1.0
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(2))
    assert w[0, 0, 0] < w[1, 1, 1] < w[2, 2, 1]
    assert torch.equal(blend_weights((2, 2, 2), "constant"), torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="blend must be one of"):
        blend_weights((2, 2, 2), "max")


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_a_pointwise_predictor_gives_back_its_value_at_every_voxel(blend):
    # any blend of identical per-voxel predictions is that prediction; sides 11 and 3 are
    # not multiples of the window and 3 is smaller than it (padded, then cropped back)
    volume = torch.rand(1, 1, 11, 9, 3, generator=torch.Generator().manual_seed(0))
    out = sliding_window(volume, lambda x: 2 * x, (4, 4, 4), overlap=0.5, blend=blend)
    assert out.shape == (1, 1, 11, 9, 3)
    assert torch.allclose(out, 2 * volume, atol=1e-6)


def test_the_predictor_decides_the_channels_and_every_window_is_run():
    calls = []

    def predictor(x):
        calls.append(x.shape[0])
        return torch.cat([x, -x], dim=1)

    volume = torch.rand(1, 1, 10, 10, 4)
    out = sliding_window(volume, predictor, (4, 4, 4), overlap=0.5, batch_size=3)
    assert out.shape == (1, 2, 10, 10, 4) and torch.allclose(out[0, 1], -volume[0, 0])
    assert sum(calls) == 4 * 4 * 1 and max(calls) == 3  # windows, in batches of at most 3


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"volume must be \(1, C, X, Y, Z\)"):
        sliding_window(torch.rand(1, 8, 8, 8), lambda x: x, (4, 4, 4))
    with pytest.raises(ValueError, match="overlap must be in"):
        sliding_window(torch.rand(1, 1, 8, 8, 8), lambda x: x, (4, 4, 4), overlap=1.0)


def test_predict_volume_is_the_sigmoid_of_a_pointwise_model():
    model = nn.Conv3d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.bias.fill_(-1.0)
    volume = torch.rand(1, 1, 9, 7, 5)
    probs = predict_volume(model, volume, (4, 4, 4), overlap=0.5)
    assert probs.shape == (9, 7, 5)
    assert torch.allclose(probs, torch.sigmoid(3 * volume[0, 0] - 1), atol=1e-6)
