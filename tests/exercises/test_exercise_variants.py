"""One specification: the exercise text, the notebook's check and the grader's hidden tests
accept and reject the same answers (issue 25, item 2).

`tests/fixtures/variants/<exercise id>/` holds answers written from the student notebook's
exercise text alone, by someone who had not seen labkit's references or tests:
`valid_*.py` (correct by the text, in different styles) and `wrong_*.py` (a plausible
mistake the text rules out, named in the file's first line). For each, the notebook's check
(`run_tests`) and the grader's verdict (every test the grader runs, with a secret seed,
observed as its worker observes them and judged by `labkit.grade.judge`) must both pass a
valid answer and both fail a wrong one. The sandbox itself is tested in tests/grade.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import labkit.exercises
from labkit.checks.notebook import hint_ladder, run_tests
from labkit.checks.registry import EXERCISES
from labkit.grade.hidden import exercise_tests, load_hidden_tests, set_run_seed
from labkit.grade.judge import ExerciseSpec, ExerciseTests, expected_observation, judge
from labkit.grade.wire import decode
from labkit.grade.worker import observe_tests

VARIANTS = Path(__file__).resolve().parents[1] / "fixtures" / "variants"
for _module in pkgutil.iter_modules(labkit.exercises.__path__):
    importlib.import_module(f"labkit.exercises.{_module.name}")


def _variants() -> list[tuple[str, str]]:
    if not VARIANTS.is_dir():
        return []
    return [
        (folder.name, path.name)
        for folder in sorted(VARIANTS.iterdir())
        if folder.is_dir()
        for path in sorted(folder.glob("*.py"))
    ]


def _load(exercise_id: str, name: str):
    """The variant's object, defined as the grader defines it: the lab's other exercises'
    references under their names, then the variant's own code."""
    exercise = EXERCISES[exercise_id]
    namespace: dict = {"__name__": "__main__"}
    for other in EXERCISES.values():
        if other.id[:2] == exercise_id[:2] and other.id != exercise_id:
            namespace[other.function] = other.reference_impl()
    source = (VARIANTS / exercise_id / name).read_text(encoding="utf-8")
    exec(compile(source, f"<{exercise_id}/{name}>", "exec"), namespace)
    return namespace[exercise.function]


def grader_verdict(exercise_id: str, obj, seed: int) -> str:
    """The grader's verdict ("pass", or why not) on ``obj`` for a run with ``seed``."""
    result = grader_result(exercise_id, obj, seed)
    return "pass" if result.status == "pass" else f"{result.status}: {result.message}"


def grader_result(exercise_id: str, obj, seed: int):
    """The grader's ``ExerciseResult`` for ``obj`` in a run with ``seed``."""
    exercise = EXERCISES[exercise_id]
    load_hidden_tests(exercise_id[:2])
    set_run_seed(seed)
    try:
        tests = exercise_tests(exercise)
        reference = exercise.reference_impl()
        expected = [expected_observation(t, reference) for t in tests]
        arrays: dict = {}
        observed = observe_tests(obj, tests, arrays)
        for obs in observed:  # across the wire, as from a worker
            if obs["kind"] == "value":
                obs["value"] = decode(obs["value"], arrays)
                if "inputs_after" in obs:
                    obs["inputs_after"] = decode(obs["inputs_after"], arrays)
    finally:
        set_run_seed(0)
    meta = {"defined": True, "notes": [], "observations": observed}
    return judge(ExerciseSpec(exercise), ExerciseTests(seed, tests, expected), meta)


@pytest.mark.parametrize(("exercise_id", "name"), _variants())
def test_the_check_and_the_grader_agree_with_the_text(exercise_id, name):
    obj = _load(exercise_id, name)
    should_pass = name.startswith("valid")
    notebook = run_tests(EXERCISES[exercise_id], obj)
    assert (notebook.status == "pass") is should_pass, (
        f"notebook check: {notebook.status}: {notebook.message}"
    )
    for seed in (12345, 67890):
        verdict = grader_verdict(exercise_id, obj, seed)
        assert (verdict == "pass") is should_pass, f"grader (seed {seed}): {verdict}"


def test_every_course_exercise_has_variants_of_both_kinds():
    course = {e for e in EXERCISES if e[:2].isdigit() and e[:2] != "00"}
    have = {(i, n.split("_")[0]) for i, n in _variants()}
    missing = sorted(e for e in course if not {(e, "valid"), (e, "wrong")} <= have)
    assert not missing, f"no valid and wrong variants for {missing}"


def _sigmoid_in_forward():
    """Lab 02's U-Net with a sigmoid added at the end of ``forward`` (a reproduced mistake)."""
    unet = EXERCISES["02.UNet3"].reference_impl()

    class UNet3(unet):
        def forward(self, x):
            return torch.sigmoid(super().forward(x))

    return UNet3


def _dice_zero_when_empty():
    """Dice that scores an empty true mask 0 instead of the lab's NaN (a reproduced mistake)."""
    dice = EXERCISES["02.dice"].reference_impl()

    def wrong(pred, truth):
        return 0.0 if not np.asarray(truth).any() else dice(pred, truth)

    return wrong


@pytest.mark.parametrize(
    ("exercise_id", "make", "words"),
    [
        ("02.UNet3", _sigmoid_in_forward, "sigmoid of the expected"),
        ("02.dice", _dice_zero_when_empty, "asks for NaN"),
    ],
)
def test_the_first_hint_names_the_diagnosed_failure_in_the_notebook_and_the_grader(
    exercise_id, make, words
):
    """Issue 25, 24: a sigmoid in forward got hints about pooling; Dice 0 on an empty mask a
    hint about 0/255 masks. The first hint now names what the values show, in both places."""
    exercise, obj = EXERCISES[exercise_id], make()
    outcome = run_tests(exercise, obj)
    first = hint_ladder(exercise, outcome.hint, outcome.diagnosis)[0]
    assert outcome.status == "fail" and words in first, (outcome.message, first)
    result = grader_result(exercise_id, obj, 4242)
    assert result.status == "fail" and words in result.hint, (result.message, result.hint)
