"""Fixtures of the grader tests: two grading runs (batch A and B) shared by most tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _grading import (
    DEMO_LAB,
    FIXTURES,
    HIDDEN_DIR,
    batch_a_submissions,
    batch_b_submissions,
    rows,
)

from labkit import checks
from labkit.grade import Options, grade


@pytest.fixture(scope="session")
def demo_env():
    """The fixture lab's exercises for the grader and its worker processes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_EXERCISE_MODULES", "demo_exercises")
        mp.delenv(checks.STRICT_ENV_VAR, raising=False)
        yield


@pytest.fixture(scope="session")
def graded(demo_env, tmp_path_factory):
    """Both batches, graded at the same time: A through the Python API, B by the command line.

    Batch A: honest and hostile notebooks that run to the end (2 jobs). Batch B (one folder
    per student, short limits): a notebook that raises, one that loops, invalid submissions.
    """
    base = tmp_path_factory.mktemp("grade")
    a, b = base / "a", base / "b"
    protected = batch_a_submissions(a / "submissions", a / "out", a / "build")
    batch_b_submissions(b / "submissions", b / "build")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "labkit.cli", "grade", str(b / "submissions")]
    command += ["--lab", "0", "--out", str(b / "out"), "--per-student-folders"]
    command += ["--source", str(DEMO_LAB.parent), "--hidden", str(HIDDEN_DIR), "--jobs", "2"]
    command += ["--timeout", "30", "--test-timeout", "8", "--no-progress"]
    cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        options = Options(
            source=DEMO_LAB.parent, hidden_dirs=(HIDDEN_DIR,), jobs=2, timeout=240, progress=False
        )
        results = grade(a / "submissions", "00", a / "out", options)
        printed, errors = cli.communicate(timeout=600)
    finally:
        cli.kill()
    batch_a = {
        "results": {r.student: r for r in results},
        "rows": rows(a / "out"),
        "out": a / "out",
        "subs": a / "submissions",
        "protected": protected,
    }
    batch_b = {
        "code": cli.returncode,
        "printed": printed.decode(),
        "errors": errors.decode(),
        "out": b / "out",
    }
    batch_b["rows"] = rows(b / "out") if (b / "out" / "gradebook.csv").exists() else {}
    return batch_a, batch_b


@pytest.fixture(scope="session")
def batch_a(graded):
    return graded[0]


@pytest.fixture(scope="session")
def batch_b(graded):
    return graded[1]
