"""The notebook time limit comes from the lab itself, measured on the grading machine.

`--timeout` left out: the grader first runs the lab's solution notebook once, as a
submission is run, and allows 3 times its time plus a minute, so a busy machine gives more
time and a notebook is never stopped where the reference would have been too. A notebook
that does run out of time is told how long the reference took, not that it has a bug.
"""

from __future__ import annotations

from _grading import DEMO_LAB, HIDDEN_DIR, demo_notebooks, edited, write

from labkit.grade import Options, grade

FOREVER = "import time\nwhile True:\n    time.sleep(1)\n"


def test_the_time_limit_is_measured_from_the_solution_notebook(demo_env, tmp_path):
    _, solution = demo_notebooks(tmp_path / "build")
    write(tmp_path / "subs", "loops.ipynb", edited(solution, at_end=FOREVER))
    options = Options(source=DEMO_LAB.parent, hidden_dirs=(HIDDEN_DIR,), progress=False)
    (result,) = grade(tmp_path / "subs", "00", tmp_path / "out", options)
    assert result.status == "timeout" and result.score == 4.0, result.run
    feedback = (tmp_path / "out" / "feedback" / "loops.md").read_text(encoding="utf-8")
    limit = float(feedback.split("within the time limit of ")[1].split(" s")[0])
    took = float(feedback.split("the lab's solution notebook took ")[1].split(" s")[0])
    assert 0 < took and abs(limit - (3 * took + 60)) <= 1, feedback
    assert "endless loop" not in feedback  # it is told the facts, not blamed


def test_the_notebooks_trainings_get_a_deadline_inside_the_graders_limit(demo_env, tmp_path):
    """The kernel running a submission has $LABKIT_DEADLINE, within the first 80 % of the
    grader's limit, so the lab's own trainings stop (and say so) before the kernel is killed."""
    _, solution = demo_notebooks(tmp_path / "build")
    probe = (
        "import os, time\n"
        "left = float(os.environ['LABKIT_DEADLINE']) - time.time()\n"
        "assert 0.5 * 200 < left <= 0.8 * 200 + 1, left\n"
    )
    write(tmp_path / "subs", "probe.ipynb", edited(solution, at_end=probe))
    options = Options(
        source=DEMO_LAB.parent, hidden_dirs=(HIDDEN_DIR,), progress=False, timeout=200.0
    )
    (result,) = grade(tmp_path / "subs", "00", tmp_path / "out", options)
    assert result.status == "ok", result.run
