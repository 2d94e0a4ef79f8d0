"""Hints teach in steps and a fallback says whose function the notebook uses (issue 15, 14-16).

A check that fails prints the exercise's idea first, a more specific hint on each later
failure of the same check, and never the reference code; when it falls back it names the
function that is now labkit's version. Real checks on real (wrong) functions, no mocks.
"""

from __future__ import annotations

import numpy as np
import pytest

from labkit import checks
from labkit.checks import Case, Exercise

pytestmark = pytest.mark.usefixtures("fresh_records")


def _halve(x):
    return np.asarray(x, dtype=np.float64) / 2


LADDER = Exercise(
    "00.halve",
    "Halving",
    "halve",
    _halve,
    lambda: [Case((np.array([2.0, 4.0]),), label="[2, 4]")],
    hint="the idea: every value becomes half as large",
    hints=("more specific: divide by a number", "most specific: that number is 2"),
)


@pytest.fixture
def ladder():
    checks.register(LADDER)
    yield LADDER
    checks.EXERCISES.pop(LADDER.id, None)


def _hint_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("  Hint: "))


def test_each_failure_of_the_same_check_gives_a_more_specific_hint(ladder, capsys):
    def wrong(x):
        return np.asarray(x, dtype=np.float64) / 3

    seen = []
    for _ in range(4):
        checks.check("00.halve", wrong)
        seen.append(_hint_line(capsys.readouterr().out))
    assert seen[0].startswith("  Hint: the idea: every value becomes half as large")
    assert "a more specific hint follows" in seen[0]
    assert seen[1].startswith("  Hint: more specific: divide by a number")
    assert seen[2] == "  Hint: most specific: that number is 2"  # the last: no promise of more
    assert seen[3] == seen[2]  # the last hint repeats


def test_a_fallback_names_the_function_that_is_now_labkits(ladder, capsys):
    def stub(x):
        raise NotImplementedError

    used = checks.check("00.halve", stub)
    out = capsys.readouterr().out
    assert used is _halve
    assert "From here on, `halve` is labkit's version, not yours" in out
    used = checks.check("00.halve", lambda x: x)
    out = capsys.readouterr().out
    assert out.startswith("[FAIL] Halving (00.halve)")
    assert "From here on, `halve` is labkit's version, not yours" in out


def test_a_passing_check_prints_no_fallback(ladder, capsys):
    checks.check("00.halve", lambda x: np.asarray(x, dtype=np.float64) * 0.5)
    out = capsys.readouterr().out
    assert out.startswith("[PASS]") and "labkit's version" not in out


def test_the_ladder_starts_with_the_diagnosis_then_the_idea_then_the_tests_hint():
    from labkit.checks.notebook import hint_ladder

    assert hint_ladder(LADDER, "a test's own hint", "your values are 255 times the expected") == [
        "your values are 255 times the expected",
        "the idea: every value becomes half as large",
        "a test's own hint",
        "more specific: divide by a number",
        "most specific: that number is 2",
    ]
    # without a diagnosis the idea comes first; a repeat of the idea is not shown twice
    assert hint_ladder(LADDER, LADDER.hint)[:2] == [LADDER.hint, LADDER.hints[0]]


def test_a_diagnosable_failure_gets_the_diagnosis_as_its_first_hint(ladder, capsys):
    checks.check("00.halve", lambda x: np.asarray(x, dtype=np.float64) / 2 * 255)
    assert _hint_line(capsys.readouterr().out).startswith("  Hint: your values are 255 times")


def test_hints_must_be_a_tuple_of_strings():
    with pytest.raises(ValueError, match="hints must be a tuple of strings"):
        Exercise("00.bad", "Bad", "bad", _halve, lambda: [], hints="one string")
