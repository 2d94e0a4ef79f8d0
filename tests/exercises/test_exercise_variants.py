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

import pytest

import labkit.exercises
from labkit.checks.notebook import run_tests
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
    result = judge(ExerciseSpec(exercise), ExerciseTests(seed, tests, expected), meta)
    return "pass" if result.status == "pass" else f"{result.status}: {result.message}"


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
