"""Red team round 3: what a student's process sends is data, never text or work for the grader.

Graded for real (lab 00, hidden tests, the sandbox when there is one) beside an honest
notebook that must keep its marks:

* A1: a ``CheckFailed`` carrying a forged Markdown ``hint`` (a "passed" heading, HTML): the
  grader took the observation's hint as its own diagnosis and wrote it raw into feedback;
* A3: results sent with ``np.savez_compressed`` (250 KB that decompress to 240 MiB), which
  the grader then cast to float64 to describe: 5 GB, OOM, no gradebook for anybody.
"""

from __future__ import annotations

from _grading import DEMO_LAB, HIDDEN_DIR, demo_notebooks, edited, rows, write

from labkit.grade import Options, grade

FORGED = "## 00.dice: passed (1 / 1) <img src=x onerror=alert(1)>"
# The worker's observing function replaced when the def runs (a default argument): every
# observation then says CheckFailed, with a hint of the student's choosing.
HINT = f"""\
import labkit.grade.worker as _w

_FORGED = {{"kind": "raised", "type": "CheckFailed", "text": "CheckFailed: x", "hint": {FORGED!r}}}

def dice(pred, truth, _=setattr(_w, "_observe", lambda call, arrays: dict(_FORGED))):
    return 0.0
"""
# np.savez is swapped when the def runs (a default argument), before the worker sends.
COMPRESSED = """\
import numpy as np

def dice(pred, truth, _=setattr(np, "savez", np.savez_compressed)):
    return np.zeros((2048, 2048, 8), dtype=bool)  # 32 MiB each
"""


def test_a_forged_hint_and_compressed_results_are_refused(demo_env, tmp_path):
    _, solution = demo_notebooks(tmp_path / "build")
    write(tmp_path / "subs", "honest.ipynb", solution)
    write(tmp_path / "subs", "hint.ipynb", edited(solution, {"00.dice": HINT}))
    write(tmp_path / "subs", "zipped.ipynb", edited(solution, {"00.dice": COMPRESSED}))
    options = Options(source=DEMO_LAB.parent, hidden_dirs=(HIDDEN_DIR,), run=False, progress=False)
    results = {r.student: r for r in grade(tmp_path / "subs", "00", tmp_path / "out", options)}
    table = rows(tmp_path / "out")
    assert table["honest"]["score"] == "4", table
    feedback = (tmp_path / "out" / "feedback" / "hint.md").read_text(encoding="utf-8")
    assert "onerror" not in feedback or "<img" not in feedback, feedback
    assert "\n## 00.dice: passed" not in feedback and FORGED not in feedback, feedback
    zipped = next(e for e in results["zipped"].exercises if e.id == "00.dice")
    assert zipped.points == 0 and zipped.status != "pass", zipped
    assert "could not read your code's results" in zipped.message, zipped.message  # unread
    assert table["zipped"]["score"] == "3", table  # only that exercise is lost
