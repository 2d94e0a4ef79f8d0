"""Written answers and hand-given marks (`--manual`), and partial credit per hidden test.

The demo lab has one written question (a markdown cell with a solution block); hidden tests
only (`run=False`), so the runs are short.
"""

from __future__ import annotations

import csv

import pytest
from _grading import DEMO_LAB, PARTIAL, edited, rows, write

from labkit.cli import main as cli_main
from labkit.course.build import build_lab
from labkit.grade import Options, grade

HIDDEN = """\
import numpy as np
from labkit.checks import Case
from labkit.grade.hidden import hidden

@hidden("00.count_positive", public=False)
def weighted():
    masks = np.zeros((5, 3, 7), dtype=np.uint8)
    masks[1, 0, :] = 255
    return [
        Case((np.zeros((2, 6, 6), dtype=np.uint8),), label="two empty masks", points=1),
        Case((masks,), label="0/255 masks", points=3),
    ]
"""


@pytest.fixture(scope="module")
def manual_lab(demo_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("manual")
    source = DEMO_LAB.parent
    write(base / "hidden", "lab00.py", HIDDEN)
    _, student, solution = build_lab(DEMO_LAB, base / "build")
    answered = edited(solution, PARTIAL)
    (cell,) = [c for c in answered.cells if "Question." in c.source]
    cell.source = "Because 2|A∩B| / (|A|+|B|) is 0 / 0 there."
    write(base / "subs", "honest.ipynb", solution)
    write(base / "subs", "student.ipynb", student)
    write(base / "subs", "partial.ipynb", answered)
    options = Options(
        source=source, hidden_dirs=(base / "hidden",), run=False, jobs=2, progress=False
    )
    results = {r.student: r for r in grade(base / "subs", "00", base / "out", options)}
    return {"base": base, "options": options, "results": results, "out": base / "out"}


def test_partial_credit_weighs_each_hidden_test(manual_lab):
    partial = manual_lab["results"]["partial"]
    count = next(e for e in partial.exercises if e.id == "00.count_positive")
    # 2 points for the exercise; the empty-mask test (weight 1 of 4) passed, 0/255 did not.
    assert (count.status, count.points) == ("fail", 0.5)
    assert "On 0/255 masks" in (manual_lab["out"] / "feedback" / "partial.md").read_text()
    honest = next(e for e in manual_lab["results"]["honest"].exercises if e.id == count.id)
    assert honest.points == 2.0


def test_written_answers_go_to_feedback_and_a_marks_sheet(manual_lab):
    feedback = (manual_lab["out"] / "feedback" / "partial.md").read_text()
    assert "## Written answers" in feedback
    # Quoted as a code block that the answer cannot close or turn into Markdown/HTML.
    assert "```text\nBecause 2|A∩B| / (|A|+|B|) is 0 / 0 there.\n```" in feedback
    student = (manual_lab["out"] / "feedback" / "student.md").read_text()
    assert "**Q1**:\n\n(not answered)" in student
    with open(manual_lab["out"] / "manual_marks.csv", newline="", encoding="utf-8") as f:
        sheet = list(csv.reader(f))
    assert sheet == [
        ["student", "Q1"],
        ["#max", ""],
        ["honest", ""],
        ["partial", ""],
        ["student", ""],
    ]


def test_manual_marks_are_merged_into_the_gradebook(manual_lab, tmp_path, capsys):
    marks = write(tmp_path, "marks.csv", "student,Q1\n#max,2\npartial,1.5\nhonest,2\n")
    options = manual_lab["options"]
    options = Options(**{**vars(options), "manual": marks})
    out = tmp_path / "out"
    grade(manual_lab["base"] / "subs", "00", out, options)
    table = rows(out)
    assert (table["partial"]["Q1"], table["partial"]["score"], table["partial"]["max_score"]) == (
        "1.5",
        "4",  # 1 (scale) + 0.5 (count_positive, partial) + 1 (dice) + 1.5 (written)
        "6",
    )
    assert (table["student"]["Q1"], table["student"]["score"]) == ("0", "0")
    assert "**Q1** (1.5 points):" in (out / "feedback" / "partial.md").read_text()
    # an answered question left blank in the sheet is not a silent 0 (a new user met that):
    # blank in the gradebook, "not marked yet" in the feedback; unanswered stays 0
    later = write(tmp_path, "later.csv", "student,Q1\n#max,2\nhonest,2\n")
    out2 = tmp_path / "out2"
    grade(manual_lab["base"] / "subs", "00", out2, Options(**{**vars(options), "manual": later}))
    assert (rows(out2)["partial"]["Q1"], rows(out2)["student"]["Q1"]) == ("", "0")
    assert "**Q1** (not marked yet):" in (out2 / "feedback" / "partial.md").read_text()
    bad = write(tmp_path, "bad.csv", "student,Q1\n#max,2\npartial,lots\n")
    with pytest.raises(ValueError, match=r"bad.csv, row 3, column Q1: expected a number from 0"):
        grade(manual_lab["base"] / "subs", "00", out, Options(**{**vars(options), "manual": bad}))
    ghost = write(tmp_path, "ghost.csv", "student,Q1\n#max,2\nnobody,1\n")
    command = ["grade", str(manual_lab["base"] / "subs"), "--lab", "00", "--out", str(out)]
    command += ["--source", str(options.source), "--manual", str(ghost), "--no-run"]
    assert cli_main(command) == 2
    assert "row 3: no submission of student 'nobody'" in capsys.readouterr().err

    # The maxima row names no student (a student may be called "max"), and a blank maximum
    # would lift every limit: it is refused.
    blank = write(tmp_path, "blank.csv", "student,Q1\n#max,\npartial,100\n")
    with pytest.raises(ValueError, match=r"row 2 \(#max\): expected the points each question"):
        grade(manual_lab["base"] / "subs", "00", out, Options(**{**vars(options), "manual": blank}))


THREE = """\
Read the table first.

**Question 1.** Is A better than B?

YOUR ANSWER HERE

**Question 2.** Why?

YOUR ANSWER HERE

**Question 3.** What would you measure?

YOUR ANSWER HERE
"""


def test_a_cell_with_three_questions_gives_three_marks():
    import nbformat

    from labkit.grade.manual import answers_of, questions_of

    template = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(THREE)])
    questions = questions_of(template)
    assert [(q.id, q.prompt) for q in questions] == [
        ("Q1", "**Question 1.** Is A better than B?"),
        ("Q2", "**Question 2.** Why?"),
        ("Q3", "**Question 3.** What would you measure?"),
    ]
    answered = nbformat.from_dict(template)
    answered.cells[0].source = THREE.replace("YOUR ANSWER HERE", "No: four volumes.", 1).replace(
        "YOUR ANSWER HERE", "Noise.", 1
    )
    assert answers_of(answered, questions) == {"Q1": "No: four volumes.", "Q2": "Noise.", "Q3": ""}
