"""Per-subject scores (Table 4): counted over whole volumes, under labkit's empty-mask policy."""

from __future__ import annotations

import math

import pytest
import torch
from _ct_trees import small_ct_tree
from torch import nn

from labkit.ct.dataset import load_ct_volumes
from labkit.ct.layout import index_ct
from labkit.ct.scores import evaluate_ct, mean_scores, volume_scores


def test_scores_of_a_hand_counted_volume():
    truth = torch.zeros(6, 6, 4, dtype=torch.uint8)
    truth[1:4, 1:4, 0:2] = 1  # 18 voxels
    pred = torch.zeros_like(truth)
    pred[1:4, 1:4, 0] = 1  # 9 true positives
    pred[5, 0:3, 3] = 1  # 3 false positives; 9 false negatives
    s = volume_scores(pred, truth)
    assert s["dice"] == pytest.approx(18 / 30)
    assert s["iou"] == pytest.approx(9 / 21)
    assert s["sensitivity"] == pytest.approx(0.5)
    assert s["precision"] == pytest.approx(0.75)


def test_an_empty_truth_is_not_scored_and_left_out_of_the_mean():
    empty = torch.zeros(3, 3, 3)
    s = volume_scores(torch.ones(3, 3, 3), empty)
    assert math.isnan(s["dice"]) and s["precision"] == 0.0
    rows = [s, {"dice": 0.5, "iou": 0.25, "sensitivity": 1.0, "precision": 0.5}]
    assert mean_scores(rows)["dice"] == 0.5
    with pytest.raises(ValueError, match="one shape"):
        volume_scores(torch.ones(3, 3, 3), torch.ones(3, 3, 2))


def test_a_threshold_model_segments_both_conventions_perfectly(tmp_path):
    # infection is -400 HU (0.567 on the window scale) or 144/255 (0.565); background -1000
    # HU (0.167) or 40/255 (0.157): one threshold at 0.4 separates them in every volume
    volumes = load_ct_volumes(index_ct(small_ct_tree(tmp_path)), min_size=(8, 8, 8), progress=False)
    model = nn.Conv3d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(100.0)
        model.bias.fill_(-40.0)
    rows, kept = evaluate_ct(model, volumes, (8, 8, 8), lung_only=False, keep=True, progress=False)
    assert [r["dice"] for r in rows] == [1.0] * 4
    assert rows[0]["shape"] == (12, 10, 6) and kept[rows[0]["subject"]].shape == (12, 10, 6)
