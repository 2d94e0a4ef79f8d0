"""Hidden tests of lab 02 (baseline U-Net): the blocks with other channel counts, odd and
non-square inputs, training mode; Dice and IoU on other shapes, 0/255 masks, empty masks."""

from __future__ import annotations

import numpy as np

from labkit.checks import Case
from labkit.checks.modules import output_probe, shape_probe
from labkit.grade.hidden import hidden, run_rng


@hidden("02.DoubleConv")
def double_conv_tests():
    return [
        output_probe("DoubleConv", (1, 5, 9, 11), 5, 7, tag="02 h dc 5"),
        output_probe("DoubleConv", (2, 1, 6, 6), 1, 1, tag="02 h dc 1"),
        shape_probe("DoubleConv", (2, 4, 7, 5), 4, 6, tag="02 h dc train", train=True),
    ]


@hidden("02.UNet3")
def unet3_tests():
    kwargs = {"in_channels": 3, "classes": 2, "base_width": 2}
    return [
        output_probe("UNet3", (1, 3, 24, 40), tag="02 h unet", ref_kwargs={"depth": 3}, **kwargs),
        shape_probe("UNet3", (2, 3, 16, 8), tag="02 h unet train", train=True, **kwargs),
    ]


def _overlap_tests() -> list[Case]:
    rng = run_rng("02 overlap")  # the run's secret seed: no answers computable in advance
    pred = rng.random((32, 48)) > 0.6
    truth = rng.random((32, 48)) > 0.7
    one = np.zeros((1, 6, 6), dtype=np.uint8)
    one[0, 2:4, 2:4] = 255
    shifted = np.roll(one, 1, axis=2)
    return [
        Case((pred, truth), label="random 32x48 masks"),
        Case((one, shifted), label="0/255 uint8 masks of shape (1, 6, 6), half overlapping"),
        Case((one.astype(bool), np.zeros_like(one, dtype=bool)), label="an empty true mask"),
        Case(
            (pred.astype(np.float32).ravel(), truth.astype(np.float32).ravel()),
            label="flat float 0./1. masks",
        ),
        Case((np.ones((3, 3), dtype=bool), np.ones((3, 3), dtype=bool)), label="two full masks"),
    ]


hidden("02.dice")(_overlap_tests)
hidden("02.iou")(_overlap_tests)
