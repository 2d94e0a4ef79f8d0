"""What the grader tests share: the fixture lab, notebook builders, the hostile cells.

`labkit grade` on real notebooks, real kernels and real files, honest and hostile.

Lab 00 is the fixture lab (tests/fixtures/labs/00_demo.py, references in
tests/fixtures/demo_exercises.py, hidden tests in tests/fixtures/grade/hidden/lab00.py as an
instructor's --hidden folder). Two grading runs are shared by most tests (module fixtures):

* batch A (Python API, 2 jobs): the solution, the generated student notebook, a hand-made
  partly correct one, one with an exercise cell's metadata removed, and the hostile ones that
  run to the end (prints [PASS], fakes the checks, monkeypatches labkit, vandalises files,
  prints 50 MB);
* batch B (command line, one folder per student, short limits): a notebook that raises, one
  that loops forever, and the invalid ones (not JSON, not a notebook, another lab, no
  exercise cells, no notebook, two notebooks).

The real labs (solutions/NN_*.py with exercises registered in labkit.exercises) are
parametrized over the labs present, so a lab added later is covered without editing this file:
solution, student and partly solved notebooks are marked with the hidden tests of every lab;
the first real lab's student notebook is also executed through the grader (see RUN_LABS).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import sys
from pathlib import Path

import nbformat

from labkit.course.build import build_lab, dumps, exercise_cells

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEMO_LAB = FIXTURES / "labs" / "00_demo.py"
HIDDEN_DIR = FIXTURES / "grade" / "hidden"
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(FIXTURES))
import demo_exercises  # noqa: E402, F401  (registers 00.scale, 00.count_positive, 00.dice)

DEMO_POINTS = {"00.scale": 1.0, "00.count_positive": 2.0, "00.dice": 1.0}

# ---------------------------------------------------------------------------- submissions
# A hand-made, partly correct submission: scale right (another way of writing it),
# count_positive right only for 0/1 masks (it passes the notebook's check, fails the hidden
# 0/255 test), dice right.
PARTIAL = {
    "00.scale": (
        "def scale(x):\n"
        "    x = x.astype(np.float32)\n"
        "    lo, hi = x.min(), x.max()\n"
        "    if hi == lo:\n"
        "        return np.zeros_like(x)\n"
        "    return (x - lo) / (hi - lo)\n"
    ),
    "00.count_positive": (
        "def count_positive(masks):\n"
        "    # adds up pixel values: right for 0/1 masks only\n"
        "    return masks.reshape(len(masks), -1).sum(axis=1).astype(np.int64)\n"
    ),
    "00.dice": (
        "def dice(pred, truth):\n"
        "    pred, truth = pred.astype(bool), truth.astype(bool)\n"
        "    both = np.logical_and(pred, truth).sum()\n"
        "    total = pred.sum() + truth.sum()\n"
        "    return float('nan') if total == 0 else 2.0 * both / total\n"
    ),
}

FAKE_PASS_OUTPUT = "[PASS] {id}: 3 test(s) passed\n"

FAKE_CHECKS = """\
# Replace the checks: everything "passes" and the records say so.
def _fake_check(exercise_id, fn):
    print(f"[PASS] {exercise_id}: 3 test(s) passed")
    lk.checks.RESULTS[exercise_id] = {"status": "pass", "own": True, "message": ""}
    lk.checks.SUBMITTED[exercise_id] = fn
    return lk.checks.get_exercise(exercise_id).reference_impl()  # keeps the notebook running

lk.checks.check = _fake_check
"""

MONKEYPATCH = """\
# Make labkit agree with the wrong answers below, in memory and on disk.
import demo_exercises
import labkit.checks
import labkit.metrics
from pathlib import Path

demo_exercises.scale = lambda x: x
demo_exercises.dice = lambda pred, truth: 1.0
labkit.checks.compare = lambda *args, **kwargs: None
labkit.checks.run_tests = lambda *args, **kwargs: labkit.checks.Outcome("pass", tests=1)
labkit.metrics.dice = lambda *args, **kwargs: 1.0
source = Path(demo_exercises.__file__).read_text()
Path(demo_exercises.__file__).write_text(
    source + "\\nscale = lambda x: x\\ndice = lambda pred, truth: 1.0\\n"
)
with open(labkit.checks.__file__, "a") as f:
    f.write("\\ncompare = lambda *args, **kwargs: None\\n")
"""

MONKEYPATCH_CELLS = {
    "00.scale": (
        "import demo_exercises\n"
        "import labkit.checks\n"
        "\n"
        "def scale(x):\n"
        "    return x  # not scaled\n"
        "\n"
        "demo_exercises.scale = scale\n"
        "_ = setattr(labkit.checks, 'compare', lambda *args, **kwargs: None)\n"
    ),
    "00.count_positive": (
        "from demo_exercises import count_positive as _reference\n"
        "\n"
        "def count_positive(masks):\n"
        "    return _reference(masks)  # labkit's answer, not mine\n"
    ),
    "00.dice": (
        "import labkit.metrics\n"
        "\n"
        "def dice(pred, truth):\n"
        "    return 1.0\n"
        "\n"
        "labkit.metrics.dice = dice\n"
        "lk.checks.RESULTS['00.dice'] = {'status': 'pass', 'own': True, 'message': ''}\n"
    ),
}

VANDAL = """\
# Delete the other submissions, forge the grader's reports, litter the working folder.
import pathlib
SUBS, OUT = pathlib.Path(r"{subs}"), pathlib.Path(r"{out}")
for p in SUBS.glob("*.ipynb"):
    if p.name != "vandal.ipynb":
        p.unlink()
OUT.mkdir(parents=True, exist_ok=True)
(OUT / "gradebook.csv").write_text("student,score\\nvandal,100\\n")
(OUT / "feedback").mkdir(exist_ok=True)
(OUT / "feedback" / "vandal.md").write_text("Score: 100 / 4")
(OUT / "feedback" / "ghost.md").write_text("Score: 100 / 4")
pathlib.Path("stray.txt").write_text("in my working copy")
"""

# Loops forever (sleeping, so the test does not starve the machine: the limit is the same).
LOOPING_DICE = "import time\n\ndef dice(pred, truth):\n    while True:\n        time.sleep(0.1)\n"


def demo_notebooks(folder: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(student, solution) notebooks of the fixture lab, as `labkit build` writes them."""
    _, student, solution = build_lab(DEMO_LAB, folder)
    return student, solution


def edited(
    nb: nbformat.NotebookNode,
    exercises: dict[str, str] | None = None,
    after_setup: str | None = None,
    at_end: str | None = None,
) -> nbformat.NotebookNode:
    """A copy of ``nb`` with exercise cells replaced and code cells inserted."""
    nb = copy.deepcopy(nb)
    cells = exercise_cells(nb)
    for exercise_id, source in (exercises or {}).items():
        cells[exercise_id].source = source
    for source, where in ((after_setup, "setup"), (at_end, "end")):
        if source is None:
            continue
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"added-{where}"
        index = len(nb.cells)
        if where == "setup":
            index = 1 + next(i for i, c in enumerate(nb.cells) if "setup(lab=" in c.source)
        nb.cells.insert(index, cell)
    return nb


def write(folder: Path, name: str, nb_or_text: nbformat.NotebookNode | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    text = nb_or_text if isinstance(nb_or_text, str) else dumps(nb_or_text)
    path.write_text(text, encoding="utf-8")
    return path


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def batch_a_submissions(subs: Path, out: Path, build: Path) -> dict[Path, str]:
    """Batch A's notebooks; returns the digests of files a submission tries to change."""
    student, solution = demo_notebooks(build)
    write(subs, "solution.ipynb", solution)
    write(subs, "student.ipynb", student)
    write(subs, "partial.ipynb", edited(student, PARTIAL))
    missing = edited(solution)
    exercise_cells(missing)["00.dice"].metadata = {}  # the dice cell lost its metadata
    write(subs, "missing_cell.ipynb", missing)
    prints = edited(student, at_end='print("[PASS] all exercises")\nprint("Score: 4 / 4")\n')
    for cell in prints.cells:  # stored outputs claiming passes are never read
        if "lk.checks.check(" in cell.source:
            text = FAKE_PASS_OUTPUT.format(id=cell.source.split('"')[1])
            cell.outputs = [nbformat.v4.new_output("stream", text=text)]
    write(subs, "prints_pass.ipynb", prints)
    write(subs, "fake_checks.ipynb", edited(student, after_setup=FAKE_CHECKS))
    write(subs, "monkeypatch.ipynb", edited(student, MONKEYPATCH_CELLS, after_setup=MONKEYPATCH))
    vandal = edited(solution, after_setup=VANDAL.format(subs=subs, out=out))
    exercise_cells(vandal)[
        "00.scale"
    ].source += f"\nimport shutil\n_ = shutil.rmtree(r'{out}', ignore_errors=True)\n"
    write(subs, "vandal.ipynb", vandal)
    huge = edited(solution, at_end='print("x" * 50_000_000)\n')
    huge.cells[-1].outputs = [nbformat.v4.new_output("stream", text="[PASS] " * 3_000_000)]
    write(subs, "Huge Output (v2)!.ipynb", huge)
    return {
        p: digest(p)
        for p in [FIXTURES / "demo_exercises.py", REPO / "labkit" / "checks" / "__init__.py"]
    }


def batch_b_submissions(subs: Path, build: Path) -> None:
    student, solution = demo_notebooks(build)
    write(subs / "raises", "00_demo.ipynb", edited(solution, after_setup="1 / 0\n"))
    write(subs / "loops", "00_demo.ipynb", edited(solution, {"00.dice": LOOPING_DICE}))
    write(subs / "not_json", "00_demo.ipynb", '{"cells": [')
    write(subs / "not_a_notebook", "00_demo.ipynb", json.dumps({"name": "alice", "cells": "x"}))
    other = copy.deepcopy(solution)
    other.metadata["labkit"]["lab"] = "01"
    write(subs / "other_lab", "01_data.ipynb", other)
    bare = copy.deepcopy(solution)
    for cell in bare.cells:
        cell.metadata = {}
    write(subs / "no_cells", "00_demo.ipynb", bare)
    (subs / "no_notebook").mkdir()
    (subs / "no_notebook" / "notes.txt").write_text("forgot to attach it")
    write(subs / "two", "00_demo.ipynb", solution)
    write(subs / "two", "00_demo_copy.ipynb", solution)
