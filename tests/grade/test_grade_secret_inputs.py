"""No exercise can be passed from answers tabulated at home (issue 24, class 7).

labkit is public, so a student can compute labkit's answers to every *fixed* test input in
advance and submit a lookup table. What defeats the table is a test whose input comes from
the run's secret: every course exercise must have at least one test whose reference answer
changes with the seed (and all-or-nothing marking then gives the table nothing).
"""

from __future__ import annotations

import copy
import importlib
import pkgutil

import pytest

import labkit.exercises
from labkit.checks.registry import EXERCISES, Case
from labkit.grade.hidden import exercise_tests, load_hidden_tests, set_run_seed
from labkit.grade.wire import encode

for _module in pkgutil.iter_modules(labkit.exercises.__path__):
    importlib.import_module(f"labkit.exercises.{_module.name}")
COURSE = sorted(e for e in EXERCISES if e[:2].isdigit() and e[:2] != "00")


def _observe(test, reference):
    try:
        if isinstance(test, Case):
            value = reference(*copy.deepcopy(test.args), **copy.deepcopy(dict(test.kwargs)))
        else:
            value = test.run(reference)
    except Exception as err:  # noqa: BLE001 (a test may expect an exception)
        return ("raised", type(err).__name__)
    arrays: dict = {}
    tree = encode(value, arrays)
    return repr(tree), [(k, a.tobytes()) for k, a in sorted(arrays.items())]


@pytest.mark.parametrize("exercise_id", COURSE)
def test_every_exercise_has_a_test_whose_answer_depends_on_the_secret(exercise_id):
    exercise = EXERCISES[exercise_id]
    load_hidden_tests(exercise_id[:2])
    reference = exercise.reference_impl()
    seen = []
    try:
        for seed in (101, 202):
            set_run_seed(seed)
            seen.append([_observe(t, reference) for t in exercise_tests(exercise)])
    finally:
        set_run_seed(0)
    secret = [i for i, (a, b) in enumerate(zip(*seen)) if a != b]
    assert secret, f"{exercise_id}: every test's answer is the same for every seed"
    assert exercise.points > 0
