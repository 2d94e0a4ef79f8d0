"""Hidden tests of lab 07 (CT volumes): windowing on other volumes and dtypes, the sampler's
behaviour with other shares and its error for a patch larger than the volume, per-subject
Dice on random volumes, and the 3-D gate with other channel counts and shapes."""

from __future__ import annotations

from typing import Any

import torch

from labkit.checks import Case
from labkit.checks.modules import output_probe
from labkit.exercises.lab07 import sampler_observations
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


def _sampler_probe(share: float, n: int, seed: int) -> Probe:
    return Probe(
        f"{n} patches with positive_share={share} (shape, bounds, positives first)",
        lambda f: sampler_observations(f, share, n=n, seed=seed),
    )


def _too_big(fn: Any) -> tuple[int, ...]:
    positives = torch.tensor([[1, 1, 1]])
    return tuple(
        fn((4, 4, 4), positives, (8, 2, 2), 3, 0.5, torch.Generator().manual_seed(0)).shape
    )


@hidden("07.sample_patch_starts")
def sampler_tests():
    return [
        _sampler_probe(0.75, 12, run_seed("07 76")),  # the run's secret seed
        _sampler_probe(0.0, 9, run_seed("07 77")),
        _sampler_probe(1.0, 7, run_seed("07 78")),
        Probe("the error for a patch larger than the volume", _too_big),
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
