"""``diagnose``: what a wrong answer's values show, on tiny hand-computed cases.

Each case is an expected and an observed value written out by hand; the diagnosis must
name the mistake that produced it, and say nothing where the numbers show no pattern.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.checks.diagnose import diagnose


def _obs(value):
    return {"kind": "value", "value": value}


LOGITS = np.array([0.0, 2.0, -1.0], dtype=np.float32)


@pytest.mark.parametrize(
    ("expected", "got", "label", "words"),
    [
        # sigmoid(0) = 0.5, sigmoid(2) = 0.8808, sigmoid(-1) = 0.2689
        (LOGITS, np.array([0.5, 0.8808, 0.2689], dtype=np.float32), "", "sigmoid of the expected"),
        (np.array([0.5, 0.8808, 0.2689], dtype=np.float32), LOGITS, "", "apply a sigmoid"),
        (np.array([0.0, 1.0, 1.0]), np.array([0.0, 255.0, 255.0]), "", "255 times"),
        (np.array([0.0, 255.0]), np.array([0.0, 1.0]), "", "1/255 of"),
        (np.array([0.25, 1.0]), np.array([0.75, 0.0]), "", "1 minus the expected"),
        (0.25, 1.0, "", "exactly 4 times"),  # a sum of 4 values where their mean was asked
        (torch.tensor(3.0), torch.tensor(0.75), "", "1/4 of"),
        (0.5, float("nan"), "", "NaN or infinity where a number"),
        (float("nan"), 0.0, "an empty true mask", "asks for NaN"),
        (1.0, 0.5, "two empty masks", "empty mask"),
        (np.zeros((4,)), np.zeros((1, 4)), "", "dimension of size 1"),
        (np.zeros((2, 3)), np.zeros((3, 2)), "", "another order"),
        (np.ones(2, dtype=np.float32), np.ones(2, dtype=np.float64), "", "float64 where float32"),
    ],
)
def test_a_pattern_in_the_values_is_named(expected, got, label, words):
    assert words in diagnose(_obs(expected), _obs(got), label)


@pytest.mark.parametrize(
    ("expected", "got"),
    [
        (np.array([2.0, 4.0]), np.array([2.0 / 3, 4.0 / 3])),  # x/3 for x/2: no pattern
        (0.8, 0.6),  # one number: a ratio of 0.75 is not a whole number
        ({"a": 1}, {"a": 2}),  # not numbers
    ],
)
def test_no_pattern_no_diagnosis(expected, got):
    assert diagnose(_obs(expected), _obs(got)) == ""


def test_an_exception_is_not_diagnosed_from_values():
    raised = {"kind": "raised", "type": "ValueError", "text": "ValueError: bad"}
    assert diagnose(_obs(1.0), raised) == ""
    assert diagnose(raised, _obs(1.0)) == ""
