"""Written answers, marked by hand: exported per student, merged back with ``--manual``.

A lab's written questions are the "YOUR ANSWER HERE" places of its student notebook (each a
``### BEGIN SOLUTION`` block in a markdown cell of the lab source): a cell that asks three
questions holds three, and each is a question of its own (``Q1``, ``Q2``, ...). The grader
cuts each student's cell at the questions' own text, copies each answer into their feedback
and writes ``manual_marks.csv``: one row per student, one column per question, after a
``#max`` row for the points each question is worth (``#`` starts no student id). The
instructor fills it in; ``labkit grade ... --manual marks.csv`` adds the marks to the
gradebook (a column per question) and to the score.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.course.build import MARKDOWN_STUB

MAX_ANSWER_CHARS = 5000  # of one answer, in feedback and exports
MAX_ROW = "#max"  # the marks file's row of maximum points per question: no student id


@dataclass(frozen=True)
class Question:
    id: str  # "Q1"
    cell_id: str  # the cell's id in the generated notebooks (stable across builds)
    prompt: str  # the question's first line, for the feedback
    index: int = 0  # which of its cell's questions it is
    anchors: tuple[str, ...] = ()  # the cell's own text around its questions' answers


def questions_of(student_nb: Any) -> list[Question]:
    """The written questions of a lab, from its generated student notebook, one per answer place."""
    found = []
    for cell in student_nb.cells:
        if cell.cell_type != "markdown" or MARKDOWN_STUB not in cell.source:
            continue
        anchors = tuple(part.strip() for part in cell.source.split(MARKDOWN_STUB))
        for index, before in enumerate(anchors[:-1]):
            lines = [ln.strip("# ").strip() for ln in before.splitlines() if ln.strip("# ")]
            asked = [ln for ln in lines if "question" in ln.lower()[:20]]
            prompt = (asked or lines[-1:] or [""])[-1]
            qid = f"Q{len(found) + 1}"
            found.append(Question(qid, str(cell.get("id", "")), prompt[:120], index, anchors))
    return found


def answers_of(nb: Any, questions: list[Question]) -> dict[str, str]:
    """Each question's answer in a student's notebook ("" when missing or not answered).

    A cell is cut at its questions' own text (``Question.anchors``); when a student changed
    that text so that it cannot be found, every question of the cell shows the whole cell.
    """
    by_id = {str(c.get("id", "")): c for c in nb.cells if c.cell_type == "markdown"}
    answers = {}
    for q in questions:
        cell = by_id.get(q.cell_id)
        text = str(cell.source) if cell is not None else ""
        parts = _between(text, q.anchors)
        answer = parts[q.index] if parts is not None else text.strip()
        if answer.replace(MARKDOWN_STUB, "").strip("# \n") == "":
            answer = ""  # the stub, untouched
        answers[q.id] = answer[:MAX_ANSWER_CHARS]
    return answers


def _between(text: str, anchors: tuple[str, ...]) -> list[str] | None:
    """The texts between consecutive ``anchors`` found in order in ``text``, or None."""
    spans, at = [], 0
    for number, anchor in enumerate(anchors):
        last = number == len(anchors) - 1
        start = text.rfind(anchor, at) if last else text.find(anchor, at)
        if start < 0:
            return None
        spans.append((start, start + len(anchor)))
        at = start + len(anchor)
    return [text[end:start].strip() for (_, end), (start, _) in zip(spans, spans[1:])]


def write_marks_template(path: Path, students: list[str], questions: list[Question]) -> None:
    """``manual_marks.csv``: student, Q1, Q2, ...; a ``max`` row first; marks left blank."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *(q.id for q in questions)])
        writer.writerow([MAX_ROW, *("" for _ in questions)])
        for student in students:
            writer.writerow([student, *("" for _ in questions)])


def read_marks(
    path: Path, questions: list[Question], students: list[str]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """``(marks per student, maximum per question)`` from a filled-in ``manual_marks.csv``.

    Blank cells are "not marked" (0). Raises ``ValueError`` naming the file, the row and the
    column for anything else that is not a number from 0 to the question's maximum, an
    unknown student or question, a missing ``#max`` row, or a question without a maximum.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise ValueError(f"--manual {path}: cannot read it ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ValueError(
            f"--manual {path}: not a UTF-8 text file (save it as CSV, UTF-8)"
        ) from None
    if not rows or not rows[0] or rows[0][0] != "student":
        raise ValueError(f"--manual {path}: the first row must be 'student, Q1, Q2, ...'")
    header = rows[0][1:]
    known = {q.id for q in questions}
    unknown = [h for h in header if h not in known]
    if unknown:
        raise ValueError(
            f"--manual {path}: unknown question column(s) {unknown}; this lab has "
            f"{sorted(known) or 'no written questions'}"
        )
    maxima: dict[str, float] | None = None
    marks: dict[str, dict[str, float]] = {}
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        who, cells = row[0], row[1:]
        values = {}
        for column, text in zip(header, cells):
            if not text.strip():
                continue
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            limit = (maxima or {}).get(column, math.inf) if who != MAX_ROW else math.inf
            if not (0 <= value <= limit):
                raise ValueError(
                    f"--manual {path}, row {number}, column {column}: expected a number from 0 "
                    f"to {limit:g}, got {text!r}"
                )
            values[column] = value
        if who == MAX_ROW:
            missing = [c for c in header if not (values.get(c, 0) > 0)]
            if missing:
                raise ValueError(
                    f"--manual {path}, row {number} ({MAX_ROW}): expected the points each "
                    f"question is worth (a number above 0) in column(s) {', '.join(missing)}"
                )
            maxima = values
        elif maxima is None:
            raise ValueError(f"--manual {path}, row {number}: the '{MAX_ROW}' row must come first")
        elif who not in students:
            raise ValueError(f"--manual {path}, row {number}: no submission of student {who!r}")
        else:
            marks[who] = values
    if maxima is None:
        raise ValueError(f"--manual {path}: no '{MAX_ROW}' row giving each question's points")
    return marks, maxima


def apply_marks(
    results: list, given: dict[str, dict[str, float]], maxima: dict[str, float]
) -> None:
    """Put ``read_marks``'s marks on each result: a blank cell is 0 for a question left
    unanswered; an answered one stays unmarked (blank in the gradebook, "not marked yet" in
    the feedback), never a silent 0."""
    for r in results:
        mine = given.get(r.student, {})
        r.manual = {
            q: mine.get(q, 0.0) for q in maxima if q in mine or not r.answers.get(q, "").strip()
        }
        r.manual_max = sum(maxima.values())
