"""Every import-path string of every registered exercise resolves (a module move breaks none).

Exercises name their reference, cases and custom test as ``"module:attribute"`` strings,
resolved only when a check runs; a module moved or renamed without updating them would break
only the check of that one exercise, in a student's notebook. Resolving them all here makes
such a move fail in the tests instead.
"""

from __future__ import annotations

import pytest

from labkit.checks.registry import EXERCISES, get_exercise, lab_exercises, resolve

LABS = [f"{n:02d}" for n in range(1, 8)]


def all_exercises():
    for lab in LABS:
        lab_exercises(lab)  # loads labkit.exercises (and LABKIT_EXERCISE_MODULES)
    return sorted(EXERCISES.values(), key=lambda e: e.id)


EXERCISE_IDS = [e.id for e in all_exercises() if not e.id.startswith("00.")]


def test_the_course_registers_exercises_in_several_labs():
    labs = {i.split(".")[0] for i in EXERCISE_IDS}
    assert len(labs) >= 5, labs


@pytest.mark.parametrize("exercise_id", EXERCISE_IDS)
def test_every_reference_string_resolves(exercise_id):
    exercise = get_exercise(exercise_id)
    for what in ("reference", "cases", "test"):
        target = getattr(exercise, what)
        if target is None:
            continue
        obj = resolve(target, f"exercise {exercise_id}: {what}")
        assert callable(obj), f"{exercise_id}.{what} = {target!r} is not callable"
    if exercise.cases is not None:
        assert exercise.make_cases(), f"{exercise_id}: its cases callable returned no case"


def test_a_moved_reference_fails_with_its_name():
    with pytest.raises(ImportError, match="labkit.models.gone:DoubleConv"):
        resolve("labkit.models.gone:DoubleConv", "exercise 02.DoubleConv: reference")
