"""The real labs (solutions/NN_*.py) marked by the grader: solution, student and partial notebooks."""

from __future__ import annotations

import os

import pytest
from _grading import (
    REPO,
    edited,
    write,
)

from labkit import checks
from labkit.course.build import build_lab, exercise_cells, find_labs
from labkit.grade import Options, grade


# ---------------------------------------------------------------------------- real labs
def real_labs() -> list[str]:
    """Lab numbers with a source in solutions/ (a lab added later is tested automatically)."""
    folder = REPO / "solutions"
    return [s.name[:2] for s in find_labs(folder)] if folder.is_dir() else []


REAL_LABS = real_labs()
# Executing a real lab's student notebook takes 30-100 s (it trains in the smoke profile) and
# nbval already executes every student notebook; the grader's executor is proven here on the
# first real lab (phantom data, parameters, private labkit copy). LABKIT_GRADE_RUN_LABS=all
# executes every lab's.
RUN_LABS = REAL_LABS if os.environ.get("LABKIT_GRADE_RUN_LABS") == "all" else REAL_LABS[:1]


@pytest.fixture(scope="module")
def real_graded(tmp_path_factory):
    """Every real lab: solution, student and partial notebooks graded (hidden tests only), and
    the student notebook graded with execution; the labs run side by side (one job each)."""
    from concurrent.futures import ThreadPoolExecutor

    base = tmp_path_factory.mktemp("real")
    setups = {}
    for lab in REAL_LABS:
        (source,) = find_labs(REPO / "solutions", [lab])
        _, student, solution = build_lab(source, base / lab / "build")
        ids = list(exercise_cells(solution))
        solved = ids[: max(1, len(ids) // 2)]  # partly correct: the first half solved
        solutions = {i: exercise_cells(solution)[i].source for i in solved}
        write(base / lab / "marks", "solution.ipynb", solution)
        write(base / lab / "marks", "student.ipynb", student)
        write(base / lab / "marks", "partial.ipynb", edited(student, solutions))
        if lab in RUN_LABS:
            write(base / lab / "run", "student.ipynb", student)
        setups[lab] = {"ids": ids, "solved": solved}

    def grade_lab(lab: str, folder: str, run: bool) -> dict:
        jobs = 1 if run else 2  # the executions run side by side already
        options = Options(
            source=REPO / "solutions", jobs=jobs, timeout=900, run=run, progress=False
        )
        results = grade(base / lab / folder, lab, base / lab / f"out-{folder}", options)
        return {r.student: r for r in results}

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {lab: pool.submit(grade_lab, lab, "run", True) for lab in RUN_LABS}
        for lab in REAL_LABS:
            setups[lab]["marks"] = grade_lab(lab, "marks", False)
        for lab in RUN_LABS:
            setups[lab]["run"] = runs[lab].result()["student"]
    return setups


def _points(ids: list[str]) -> float:
    return sum(float(checks.get_exercise(i).points) for i in ids)


@pytest.mark.slow
@pytest.mark.parametrize("lab", REAL_LABS)
def test_real_lab_solution_scores_full_marks(real_graded, lab):
    got = real_graded[lab]["marks"]["solution"]
    assert got.score == _points(real_graded[lab]["ids"]) > 0, got.exercises


@pytest.mark.slow
@pytest.mark.parametrize("lab", REAL_LABS)
def test_real_lab_student_notebook_scores_zero(real_graded, lab):
    marks = real_graded[lab]["marks"]["student"]
    assert [e.status for e in marks.exercises] == ["stub"] * len(real_graded[lab]["ids"])
    assert marks.score == 0


@pytest.mark.slow
@pytest.mark.parametrize("lab", RUN_LABS)
def test_real_lab_student_notebook_executes_in_the_grader(real_graded, lab):
    ran = real_graded[lab]["run"]
    assert (ran.status, ran.score) == ("ok", 0.0), ran.run
    assert ran.run["cells"] > 5 and ran.run["seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("lab", REAL_LABS)
def test_real_lab_partial_submission_gets_exactly_its_marks(real_graded, lab):
    got = real_graded[lab]["marks"]["partial"]
    solved = real_graded[lab]["solved"]
    assert got.score == _points(solved), got.exercises
    assert [e.id for e in got.exercises if e.status == "pass"] == solved
