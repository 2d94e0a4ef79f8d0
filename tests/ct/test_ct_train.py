"""Training on patches: report 004's loss for 3-D logits, and the best validation epoch kept."""

from __future__ import annotations

import math
import re

import pytest
import torch

from labkit.ct.dataset import load_ct_volumes
from labkit.ct.layout import index_ct, split_subjects
from labkit.ct.patches import PatchLoader
from labkit.ct.phantom import make_ct_phantom
from labkit.ct.scores import evaluate_ct, mean_scores
from labkit.ct.train import train_ct, volume_loss
from labkit.models import build_model
from labkit.runs import SAFETY_STOP, cut_text, stop_warning


def test_the_loss_is_half_bce_plus_a_dice_over_the_whole_batch():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 4, 4, 2, generator=g)
    y = (torch.rand(2, 1, 4, 4, 2, generator=g) > 0.7).float()
    p = torch.sigmoid(z)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)  # smooth 1, all voxels
    loss = volume_loss()
    assert loss(z, y).item() == pytest.approx((0.5 * bce + dice).item(), rel=1e-5)
    aux = [z + 1, z - 1]
    mean_aux = (loss(aux[0], y) + loss(aux[1], y)) / 2
    assert loss([z, *aux], y).item() == pytest.approx((0.5 * loss(z, y) + 0.5 * mean_aux).item())


@pytest.mark.slow
def test_training_keeps_the_best_validation_epoch_and_a_safety_limit_cuts_it(tmp_path, capsys):
    root = make_ct_phantom(tmp_path / "ct", n=5, seed=1, sides=(16,), slices=(8, 8), progress=False)
    split = split_subjects(index_ct(root))
    volumes = {k: load_ct_volumes(v, progress=False) for k, v in split.items()}
    torch.manual_seed(0)
    model = build_model("fvpaspp3d", base_width=2, depth=1)
    loader = PatchLoader(volumes["train"], (8, 8, 8), batch_size=2, patches_per_volume=2)
    history = train_ct(model, loader, volumes["val"], epochs=3, lr=1e-2, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(math.isfinite(h["loss"]) for h in history)
    rows, _ = evaluate_ct(model, volumes["val"], (8, 8, 8), overlap=0.25, progress=False)
    assert mean_scores(rows)["dice"] == pytest.approx(max(h["val_dice"] for h in history))
    assert history.stopped_reason == "completed" and history.epochs_planned == 3
    # no bar: one plain line per epoch still says how far the run is
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["1/3", "2/3", "3/3"], lines
    assert all(re.fullmatch(r"epoch \d/3  loss \S+  val Dice \S+  \d+\.\ds", ln) for ln in lines)

    # item 12 of issue 25: the same safety limit as fit's, with the same warning and marks
    cut = train_ct(model, loader, volumes["val"], epochs=3, lr=1e-2, time_budget_min=1e-6)
    assert [h["epoch"] for h in cut] == [1] and cut.stopped_reason == "time_budget"
    assert cut.stopped_by == "the safety limit (1e-06 min)"
    assert SAFETY_STOP in stop_warning(cut) and cut_text(cut) == "CUT at 1 of 3 epochs"
    shown = capsys.readouterr()
    assert "CUT after 1 of 3" in shown.err.split("\r")[-1]
    assert "will stop it after about epoch 1 of 3" in shown.out
