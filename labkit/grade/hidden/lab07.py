"""Hidden tests of lab 07 (CT volumes): windowing on other volumes and dtypes, the sampler's
behaviour with other shares and sizes (judged by the notebook's rule), per-subject Dice on
random volumes, and the 3-D gate with other channel counts and shapes."""

from __future__ import annotations

import torch

from labkit.checks import Case
from labkit.checks.modules import output_probe
from labkit.exercises.lab07 import sampler_probe
from labkit.grade.hidden import Probe, hidden, run_seed


@hidden("07.window_ct")
def window_tests():
    g = torch.Generator().manual_seed(run_seed("07 75"))  # the run's secret seed
    hu = torch.randint(-2048, 3000, (3, 7, 5), generator=g).double()
    windowed = torch.randint(0, 256, (2, 4, 6), generator=g).to(torch.uint8)
    return [
        Case((hu, "hu"), label="a float64 HU volume with values from -2048 to 3000"),
        Case((windowed, "windowed"), label="a random uint8 windowed volume"),
        Case((torch.tensor([-1250.0, 250.0]), "hu"), label="the two ends of the window"),
        Probe(
            "the dtype returned for an int16 HU volume", lambda f: str(f(hu.short(), "hu").dtype)
        ),
    ]


@hidden("07.sample_patch_starts")
def sampler_tests():
    # Other shares and sizes, with the run's secret seeds; the same rule as the notebook's.
    return [
        sampler_probe(0.75, 12, "07 h sampler 0.75"),
        sampler_probe(0.0, 30, "07 h sampler 0.0"),
        sampler_probe(1.0, 7, "07 h sampler 1.0"),
    ]


@hidden("07.subject_dice")
def subject_dice_tests():
    g = torch.Generator().manual_seed(run_seed("07 79"))
    truth = (torch.rand(9, 8, 7, generator=g) > 0.8).to(torch.uint8)
    pred = (torch.rand(9, 8, 7, generator=g) > 0.7).to(torch.uint8)
    return [
        Case((pred, truth), label="random 9x8x7 volumes"),
        Case((truth * pred, truth), label="a prediction with no false positive"),
        Case((torch.ones_like(truth), truth), label="everything predicted"),
    ]


@hidden("07.ContrastGate3d")
def gate_tests():
    return [
        output_probe("ContrastGate3d", shape, c, tag=f"07 h gate {c}", layout="fc", scale=3.0)
        for c, shape in ((12, (1, 12, 3, 1, 5)), (3, (2, 3, 1, 1, 1)))
    ]
