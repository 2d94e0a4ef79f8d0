"""Hidden tests of lab 04 (pretrained encoder): normalisation of other sizes and the extremes
of the grey range; freezing on a small model whose encoder starts partly frozen; the focal
loss's value on other shapes and gammas and its gradient (a loss computed with ``.item()``
or numpy cannot train)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from labkit.checks import Case
from labkit.checks.losses import gradient_probe, value_probe
from labkit.grade.hidden import Probe, hidden, run_seed


@hidden("04.imagenet_normalize")
def imagenet_normalize_tests():
    g = torch.Generator().manual_seed(run_seed("04 14"))
    return [
        Case((torch.full((1, 1, 2, 3), 255, dtype=torch.uint8),), label="an all-white uint8 image"),
        Case((torch.zeros(2, 1, 1, 1, dtype=torch.uint8),), label="two black 1x1 uint8 images"),
        Case((torch.rand(1, 1, 3, 7, generator=g),), label="a 3x7 float image in [0, 1]"),
    ]


class _TinySegmenter(nn.Module):
    """The parts an smp U-Net has (encoder, decoder, segmentation_head), a few weights each."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
        self.decoder = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
        self.segmentation_head = nn.Conv2d(4, 2, 1)


def _count(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _freezing(fn: Any, seed: int) -> dict:
    torch.manual_seed(0)
    model = _TinySegmenter()
    # Which tensors start frozen comes from the run's secret (the encoder partly, the
    # decoder's own choice that must be left as it is): nothing to tabulate in advance.
    frozen_at_start = (
        torch.rand(len(list(model.parameters())), generator=torch.Generator().manual_seed(seed))
        < 0.4
    )
    for p, frozen in zip(model.parameters(), frozen_at_start):
        p.requires_grad_(not bool(frozen))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = _count(fn(model, False))
    flags_frozen = [p.requires_grad for p in model.parameters()]
    unfrozen = _count(fn(model, True))
    flags_unfrozen = [p.requires_grad for p in model.parameters()]
    changed = sorted(k for k, v in model.state_dict().items() if not torch.equal(v, before[k]))
    return {
        "returned after freezing": frozen,
        "requires_grad of each parameter after freezing": flags_frozen,
        "returned after unfreezing": unfrozen,
        "requires_grad of each parameter after unfreezing": flags_unfrozen,
        "weights that changed": changed,
    }


@hidden("04.set_encoder_trainable")
def set_encoder_trainable_tests():
    return [
        Probe(
            "freezing then unfreezing a small model whose encoder starts partly frozen (and "
            "whose decoder and head have frozen tensors that must stay as they are)",
            partial(_freezing, seed=run_seed("04 freezing")),
        )
    ]


@hidden("04.focal_loss")
def focal_loss_tests():
    g = torch.Generator().manual_seed(run_seed("04 16"))
    logits = 3 * torch.randn(3, 2, 5, 7, generator=g)
    target = (torch.rand(3, 1, 5, 7, generator=g) > 0.8).float()
    one = torch.tensor([[[[0.3]], [[-1.2]]]])  # a single pixel
    random = Case((logits, target), label="random logits (3, 2, 5, 7)")
    return [
        value_probe(random),
        value_probe(Case((logits, target), {"gamma": 1.0}, label="random logits with gamma=1")),
        value_probe(Case((one, torch.ones(1, 1, 1, 1)), label="one infected pixel")),
        value_probe(Case((logits, torch.zeros_like(target)), label="an all-background target")),
        gradient_probe(random),
    ]
