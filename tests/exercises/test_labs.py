"""Every lab (01-06): its registered exercises, their checks and the built notebooks.

* the registry holds each lab's exercises with their points;
* every exercise passes its own check with labkit's reference, and with the solution code
  written in the lab source, and is reported as a stub with the code students get;
* the exercise ids in the built notebooks are exactly the registered ones, each followed
  by its check, and the committed notebooks are built from the current sources.

Each lab's wrong answers and references are tested in test_labs_01_03.py / test_labs_04_06.py.
"""

from __future__ import annotations

import pytest
from _labs import POINTS, ROOT, SOURCES, exercise_namespace

import labkit.exercises  # noqa: F401  (registers the course's exercises)
from labkit.checks import EXERCISES, lab_exercises, run_tests
from labkit.course.build import build, build_lab, exercise_cells

pytestmark = pytest.mark.usefixtures("fresh_records")


def test_registry_holds_the_labs_exercises_with_their_points():
    found = {e.id: e.points for lab in SOURCES for e in lab_exercises(lab)}
    assert found == POINTS


@pytest.mark.parametrize("exercise_id", sorted(POINTS))
def test_reference_passes_its_own_check(exercise_id):
    ex = EXERCISES[exercise_id]
    outcome = run_tests(ex, ex.reference_impl())
    assert outcome.status == "pass", outcome.message
    assert outcome.tests >= 1


@pytest.mark.parametrize("lab", sorted(SOURCES))
def test_solution_code_passes_and_student_stubs_are_reported_as_stubs(lab, tmp_path):
    solution = exercise_namespace(lab, "solution", tmp_path / "solution")
    student = exercise_namespace(lab, "student", tmp_path / "student")
    for ex in lab_exercises(lab):
        outcome = run_tests(ex, solution[ex.function])
        assert outcome.status == "pass", f"{ex.id}: {outcome.message}"
        outcome = run_tests(ex, student[ex.function])
        assert outcome.status == "stub", f"{ex.id}: {outcome.status} {outcome.message}"
        assert "not implemented yet" in outcome.message


@pytest.mark.parametrize("lab", sorted(SOURCES))
def test_notebook_exercise_ids_match_the_registry_and_each_is_checked(lab, tmp_path):
    _, student, solution = build_lab(SOURCES[lab], tmp_path)
    registered = sorted(e.id for e in lab_exercises(lab))
    for nb in (student, solution):
        assert sorted(exercise_cells(nb)) == registered
        assert sorted(nb.metadata["labkit"]["exercises"]) == registered
        first_code = next(c for c in nb.cells if c.cell_type == "code" and "setup(" in c.source)
        assert f'setup(lab="{lab}"' in first_code.source
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert "PROFILE = None" in params.source and "DATA = None" in params.source
    sources = [c.source for c in solution.cells]
    for ex in lab_exercises(lab):
        at = next(i for i, c in enumerate(solution.cells) if c.metadata.get("exercise") == ex.id)
        check_cell = next(s for s in sources[at + 1 :] if s.strip())
        assert check_cell == f'{ex.function} = lk.checks.check("{ex.id}", {ex.function})'


def test_committed_notebooks_are_built_from_the_current_sources():
    report = build(ROOT / "solutions", ROOT / "notebooks", labs=sorted(SOURCES), check=True)
    assert [lab.lab for lab in report.labs] == sorted(SOURCES)
    assert report.stale == [], "run `labkit build`: stale " + ", ".join(map(str, report.stale))
