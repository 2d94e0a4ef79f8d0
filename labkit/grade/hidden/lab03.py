"""Hidden tests of lab 03 (residual U-Net): the residual block with both kinds of shortcut
on other sizes, the residual encoder on a non-square 3-channel input; BCE and MSE at the
extremes (confident right and wrong, p = 0.5), other shapes and dtypes."""

from __future__ import annotations

import numpy as np

from labkit.checks import Case
from labkit.checks.modules import output_probe, shape_probe
from labkit.grade.hidden import hidden, run_rng


@hidden("03.ResidualBlock")
def residual_block_tests():
    return [
        output_probe("ResidualBlock", (1, 5, 9, 11), 5, 7, tag="03 h rb 5"),  # projection
        output_probe("ResidualBlock", (2, 6, 5, 5), 6, 6, tag="03 h rb 6"),  # identity
        shape_probe("ResidualBlock", (2, 2, 7, 3), 2, 4, tag="03 h rb train", train=True),
    ]


@hidden("03.ResUNet3")
def resunet3_tests():
    kwargs = {"in_channels": 3, "classes": 2, "base_width": 2}
    return [
        output_probe("ResUNet3", (1, 3, 24, 40), tag="03 h ru", ref_kwargs={"depth": 3}, **kwargs),
        shape_probe("ResUNet3", (2, 3, 16, 8), tag="03 h ru train", train=True, **kwargs),
    ]


@hidden("03.bce_and_mse")
def bce_and_mse_tests():
    rng = run_rng("03 9")
    labels = (rng.random(50) > 0.5).astype(np.uint8)
    return [
        Case((labels.astype(np.float64), labels), label="confident and right everywhere (p = y)"),
        Case((1.0 - labels, labels), label="confident and wrong everywhere (p = 1 - y)"),
        Case((np.full((4, 4), 0.5), np.eye(4)), label="p = 0.5 everywhere"),
        Case(
            (rng.uniform(0, 1, size=(3, 1, 5, 7)), (rng.random((3, 1, 5, 7)) > 0.9)),
            label="float64 probabilities and a boolean mask of shape (3, 1, 5, 7)",
        ),
        Case((np.array([0.25]), np.array([1])), label="a single pixel"),
    ]
