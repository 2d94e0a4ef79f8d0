"""Hidden tests of lab 05 (lung -> infection cascade): the stage-2 input with other channel
counts and mask dtypes; the combined loss on other shapes, on empty masks and its gradient;
the lung constraint with empty and full lungs; false positives with 0/255 masks and
non-square images."""

from __future__ import annotations

import torch

from labkit.checks import Case
from labkit.checks.losses import gradient_probe, value_probe
from labkit.grade.hidden import hidden, run_seed


@hidden("05.infection_input")
def infection_input_tests():
    g = torch.Generator().manual_seed(run_seed("05 53"))
    two = torch.randn(3, 2, 2, 3, generator=g)
    return [
        Case(
            (two, torch.rand(3, 1, 2, 3, generator=g) > 0.5),
            label="a 2-channel batch (3, 2, 2, 3) and a boolean lung mask",
        ),
        Case(
            (
                torch.rand(1, 3, 4, 4, generator=g).double(),
                torch.ones(1, 1, 4, 4, dtype=torch.uint8),
            ),
            label="a float64 RGB image and a uint8 lung mask covering everything",
        ),
    ]


@hidden("05.combined_loss")
def combined_loss_tests():
    g = torch.Generator().manual_seed(run_seed("05 54"))
    logits = 3 * torch.randn(2, 1, 3, 7, generator=g)
    target = (torch.rand(2, 1, 3, 7, generator=g) > 0.7).float()
    random = Case((logits, target), label="random logits of 2 images (2, 1, 3, 7)")
    return [
        value_probe(random),
        value_probe(
            Case((logits, torch.zeros_like(target)), label="2 images whose masks are both empty")
        ),
        value_probe(
            Case(
                (torch.tensor([[[[-0.4]]]]), torch.ones(1, 1, 1, 1)),
                label="one 1x1 image, infected",
            )
        ),
        gradient_probe(random),
    ]


@hidden("05.constrain_to_lung")
def constrain_tests():
    g = torch.Generator().manual_seed(run_seed("05 55"))
    probs = torch.rand(3, 1, 4, 6, generator=g)
    return [
        Case((probs, torch.zeros(3, 1, 4, 6)), label="images without any lung pixel"),
        Case(
            (probs, torch.ones(3, 1, 4, 6, dtype=torch.bool)),
            label="a boolean lung mask covering everything",
        ),
        Case(
            (probs.double(), (torch.rand(3, 1, 4, 6, generator=g) > 0.5).to(torch.uint8) * 255),
            label="float64 probabilities and a 0/255 uint8 lung mask",
        ),
    ]


@hidden("05.fp_outside_lung")
def fp_tests():
    g = torch.Generator().manual_seed(run_seed("05 56"))
    pred = (torch.rand(3, 1, 5, 7, generator=g) > 0.5).to(torch.uint8) * 255
    truth = (torch.rand(3, 1, 5, 7, generator=g) > 0.8).to(torch.uint8) * 255
    lung = (torch.rand(3, 1, 5, 7, generator=g) > 0.4).to(torch.uint8) * 255
    nothing = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    return [
        Case((pred, truth, lung), label="0/255 uint8 masks of 3 images of 5x7 pixels"),
        Case((nothing, nothing, nothing), label="empty masks"),
        Case((~nothing, nothing, nothing), label="everything predicted, no lung, no infection"),
    ]
