"""`labkit grade` on honest work: full, zero and partial marks, errors, timeouts."""

from __future__ import annotations

import numpy as np
from _grading import (
    DEMO_POINTS,
    PARTIAL,
)

from labkit import checks


# ---------------------------------------------------------------------------- honest work
def test_solution_scores_full_marks_and_runs(batch_a):
    row = batch_a["rows"]["solution"]
    assert row["status"] == "ok", row
    assert {k: float(row[k]) for k in DEMO_POINTS} == DEMO_POINTS
    assert (row["score"], row["max_score"]) == ("4", "4")
    feedback = (batch_a["out"] / "feedback" / "solution.md").read_text()
    assert "**Score: 4 / 4**" in feedback
    assert "Your notebook ran from start to end" in feedback


def test_student_notebook_executes_and_scores_zero(batch_a):
    row = batch_a["rows"]["student"]
    assert row["status"] == "ok", row
    assert row["score"] == "0"
    result = batch_a["results"]["student"]
    assert [e.status for e in result.exercises] == ["stub", "stub", "stub"]
    feedback = (batch_a["out"] / "feedback" / "student.md").read_text()
    assert feedback.count("Not implemented yet (your code still raises NotImplementedError)") == 3


def test_partial_submission_gets_exactly_its_marks(batch_a):
    row = batch_a["rows"]["partial"]
    assert (row["00.scale"], row["00.count_positive"], row["00.dice"]) == ("1", "0", "1")
    assert (row["score"], row["status"]) == ("2", "ok")
    feedback = (batch_a["out"] / "feedback" / "partial.md").read_text()
    assert "On 5 masks of shape (3, 7) with values 0/255: wrong values" in feedback


def test_hidden_tests_are_stricter_than_the_notebook_check(batch_a):
    """The partial count_positive passes the notebook's own check but not the hidden tests."""
    namespace = {"np": np}
    exec(PARTIAL["00.count_positive"], namespace)
    exercise = checks.get_exercise("00.count_positive")
    assert checks.run_tests(exercise, namespace["count_positive"]).status == "pass"
    result = next(e for e in batch_a["results"]["partial"].exercises if e.id == exercise.id)
    assert (result.status, result.passed, result.tests) == ("fail", 2, 4)


def test_an_exercise_cell_without_metadata_scores_zero_only_there(batch_a):
    row = batch_a["rows"]["missing_cell"]
    assert (row["00.scale"], row["00.count_positive"], row["00.dice"]) == ("1", "2", "0")
    assert row["status"] == "ok"
    assert "missing exercise cell(s): 00.dice" in row["detail"]


def test_a_notebook_that_raises_keeps_its_exercise_marks(batch_b):
    row = batch_b["rows"]["raises"]
    assert (row["status"], row["score"]) == ("error", "4")
    assert "ZeroDivisionError: division by zero" in row["detail"]
    feedback = (batch_b["out"] / "feedback" / "raises.md").read_text()
    assert "Your notebook stopped with an error in section" in feedback
    assert "the cell starting 1 / 0" in feedback  # what Jupyter shows: heading, first line
    assert "----> 1 1 / 0" in feedback or "1 / 0" in feedback


def test_an_endless_loop_times_out_and_loses_only_that_exercise(batch_b):
    row = batch_b["rows"]["loops"]
    assert row["status"] == "timeout", row
    assert (row["00.scale"], row["00.count_positive"], row["00.dice"]) == ("1", "2", "0")
    feedback = (batch_b["out"] / "feedback" / "loops.md").read_text()
    assert "did not finish within 8 s on two half-overlapping masks" in feedback
    assert "did not finish within the time limit of 30 s" in feedback
