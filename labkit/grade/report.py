"""What ``labkit grade`` writes: ``gradebook.csv``, one feedback page per student, a summary.

``gradebook.csv``: one row per student: ``student, lab, <one column per exercise id: points
earned>, score, max_score, status, sandbox, seconds, detail`` (sandbox: ``bwrap``, or ``none``
when the student's code ran with the weaker fallback isolation) (status ``ok`` / ``error`` / ``timeout`` /
``invalid``; detail: why, in a few words). ``feedback/<student>.md``: the score, a table of
exercises, then per exercise whether it passed and, if not, the first failing test in a
student's words with the lab's hint, and how the notebook ran (the last traceback lines of an
error, the time taken).
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from labkit.grade.text import block, csv_cell, inline, terminal

_VERDICT = {
    "pass": "passed",
    "fail": "failed",
    "stub": "not implemented",
    "missing": "not found",
    "timeout": "too slow",
    "crashed": "could not be tested",
}


SANDBOX_WARNING = (
    "WARNING: {n} submission(s) ran WITHOUT the sandbox (bubblewrap missing or unable to "
    "start): their code could read your files, reach the network and tamper with the "
    "grading of later students. Install bubblewrap (apt-get install bubblewrap) or grade "
    "inside a throw-away container; --require-sandbox refuses to grade without it. See "
    "ARCHITECTURE.md, Trust."
)


def _num(value: float) -> str:
    return f"{value:g}"


def scrub(text: object) -> str:
    """Student-visible text without this machine's paths that a sandboxed process can read
    (in ``/proc/self/mountinfo``, tracebacks): this Python, the grader's temporary folder,
    the home folder. Literal occurrences only: see ARCHITECTURE.md, "Not guaranteed"."""
    text = str(text)
    places = {
        sys.prefix: "<python>",
        sys.base_prefix: "<python>",
        os.path.realpath(sys.executable).rsplit("/bin/", 1)[0]: "<python>",
        tempfile.gettempdir(): "<tmp>",
        str(Path.home()): "~",
    }
    for path, name in sorted(places.items(), key=lambda kv: -len(kv[0])):
        if len(path) > 1:
            text = text.replace(path, name)
    return text


def run_place(run: dict) -> str:
    """Where the notebook stopped, as a student finds it in Jupyter: the section heading
    above the cell and the cell's first line (cell numbers are not shown there)."""
    cell = run.get("cell", -1)
    if not isinstance(cell, int) or cell < 0:
        return ""
    section = run.get("section") or ""
    first = run.get("cell_source") or ""
    where = f"section \u201c{section}\u201d" if section else "the notebook"
    return where + (f", the cell starting {first}" if first else "")


def write_gradebook(path: Path, results: list, exercises: list, questions: list = ()) -> None:
    """``gradebook.csv``: student, lab, one column per exercise (and per hand-marked question),
    score, max_score, status, sandbox, seconds, detail."""
    ids = [e.id for e in exercises]
    questions = list(questions)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "student",
                "lab",
                *ids,
                *questions,
                "score",
                "max_score",
                "status",
                "sandbox",
                "seconds",
                "detail",
            ]
        )
        for r in results:
            points = {e.id: e.points for e in r.exercises}
            writer.writerow(
                [
                    r.student,
                    r.lab,
                    *(_num(points.get(i, 0.0)) for i in ids),
                    *(_num(r.manual[q]) if q in r.manual else "" for q in questions),
                    _num(r.score),
                    _num(r.max_score),
                    r.status,
                    r.sandbox,
                    f"{r.seconds:.1f}",
                    csv_cell(r.detail),
                ]
            )
    tmp.replace(path)


def write_feedback(folder: Path, results: list, options: Any) -> None:
    """``feedback/<student>.md`` for every result; the folder is emptied first."""
    _empty(folder)
    folder.mkdir(parents=True)
    for r in results:
        _write_new(folder / f"{r.student}.md", feedback_text(r, options))


def write_logs(folder: Path, results: list) -> None:
    """``logs/<student>.txt``: what a student's workers printed on stderr (instructors only;
    control characters escaped, as everywhere a person reads student text)."""
    _empty(folder)
    kept = [r for r in results if r.log.strip()]
    if kept:
        folder.mkdir(parents=True)
    for r in kept:
        _write_new(folder / f"{r.student}.txt", terminal(r.log, keep_newlines=True) + "\n")


def _empty(folder: Path) -> None:
    """Remove what an earlier run left at ``folder`` (a link is removed, never followed)."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    shutil.rmtree(folder, ignore_errors=True)


def _write_new(path: Path, text: str) -> None:
    """Write a file the grader creates now (never through an existing link or file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)


def feedback_text(r: Any, options: Any) -> str:
    lines = [
        f"# Lab {r.lab} feedback: {inline(r.student)}",
        "",
        f"**Score: {_num(r.score)} / {_num(r.max_score)}** · notebook {inline(r.file)} · "
        f"status: {r.status} · graded in {r.seconds:.1f} s",
        "",
    ]
    if r.status == "invalid":
        lines += [f"Your submission could not be graded: {inline(scrub(r.detail))}.", ""]
    lines += ["| exercise | result | points |", "| --- | --- | --- |"]
    for e in r.exercises:
        lines.append(
            f"| {inline(e.name)} | {_VERDICT.get(e.status, e.status)} | "
            f"{_num(e.points)} / {_num(e.max_points)} |"
        )
    lines.append("")
    if r.status != "invalid":
        for e in r.exercises:
            lines += _exercise_section(e)
        lines += _answers_section(r)
        lines += _run_section(r, options)
    lines += [
        "---",
        "How this was graded: each exercise cell was run on its own in a fresh Python (its "
        "imports and definitions, with the notebook's imports) and its code was tested with "
        "the notebook's checks plus hidden tests that try other inputs and edge cases. Each "
        "exercise earns its points when every test passes. What your notebook printed or "
        "stored was not used.",
        "",
    ]
    return "\n".join(lines)


def _exercise_section(e: Any) -> list[str]:
    verdict = f"{_VERDICT.get(e.status, e.status)} ({_num(e.points)} / {_num(e.max_points)})"
    title = f"## {inline(e.name)}: {verdict}"
    lines = [title, ""]
    if e.status == "pass":
        lines.append(f"All {e.tests} tests passed.")
    else:
        if e.status == "fail":
            lines.append(f"{e.passed} of {e.tests} tests passed; the next one failed:")
            lines.append("")
        message = inline(scrub(e.message))
        lines.append(message[:1].upper() + message[1:])
        if e.hint:
            lines += [
                "",
                f"Hint: {inline(e.hint)}",
            ]  # the lab's or the grader's text, escaped all the same
        if e.notes:
            lines += ["", "Notes from running your exercise cell:"]
            lines += [f"- {inline(scrub(n))}" for n in e.notes]
    lines.append("")
    return lines


def _answers_section(r: Any) -> list[str]:
    """The student's written answers, quoted, with the hand-given marks once merged."""
    if not r.answers:
        return []
    lines = ["## Written answers (marked by your instructor)", ""]
    for qid, text in r.answers.items():
        if qid in r.manual:
            mark = f" ({_num(r.manual[qid])} points)"
        else:  # hand marks merged, but none given for this answer yet
            mark = " (not marked yet)" if r.manual_max > 0 else ""
        lines.append(f"**{qid}**{mark}:")
        lines.append("")
        lines += block(text) if text.strip() else ["(not answered)"]
        lines.append("")
    return lines


def _run_section(r: Any, options: Any) -> list[str]:
    run = r.run
    seconds = run.get("seconds")
    took = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    lines = ["## Running your notebook", ""]
    if r.status == "not-run":
        return [*lines, "Your notebook was not run this time (only the exercises were graded).", ""]
    if r.status == "ok":
        lines.append(
            f"Your notebook ran from start to end{took} ({run.get('cells', '?')} code cells)."
        )
    elif r.status == "timeout":
        where = inline(run_place(run)) or "a cell"
        reference = getattr(options, "reference_seconds", None)
        lines.append(
            f"Your notebook did not finish within the time limit of {options.timeout:g} s; it "
            f"was stopped in {where}."
            + (
                f" On this machine, during this grading, the lab's solution notebook took "
                f"{reference:g} s; the limit is 3 times that plus a minute."
                if reference
                else " This limit was set by your instructor; labkit did not time the lab's "
                "own solution against it, so ask them whether it fits the lab before you look "
                "for a fault in your code."
            )
        )
    else:
        where = inline(run_place(run)) or "a cell"
        lines.append(f"Your notebook stopped with an error in {where}{took}:")
        lines += ["", *block(scrub("\n".join([run.get("error", ""), *run.get("traceback", [])])))]
    if run.get("output_truncated"):
        lines += ["", "It printed so much that most of the output was dropped."]
    if r.status != "ok":
        # a time-out under a limit nobody timed the solution against is not the student's
        untimed = r.status == "timeout" and not getattr(options, "reference_seconds", None)
        lines += [
            "",
            "Exercises are graded from their own cells, so the points above do not depend on "
            "where the notebook stopped"
            + (
                "."
                if untimed
                else "; but a notebook that runs from start to end is part of the work."
            ),
        ]
    lines.append("")
    return lines


def write_summary(results: list, seconds: float, print_fn: Any = print) -> None:
    """Print one line per student and the totals."""
    width = max([len(r.student) for r in results] + [7])
    print_fn(f"{'student':<{width}}  {'score':>9}  {'status':<8}  {'seconds':>7}  detail")
    for r in results:
        score = f"{_num(r.score)}/{_num(r.max_score)}"
        detail = terminal(r.detail, limit=70)
        print_fn(f"{r.student:<{width}}  {score:>9}  {r.status:<8}  {r.seconds:>7.1f}  {detail}")
    counts = Counter(r.status for r in results)
    mean = sum(r.score for r in results) / max(1, len(results))
    top = results[0].max_score if results else 0.0
    statuses = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    print_fn(
        f"{len(results)} submission(s) graded in {seconds:.0f} s · mean score {mean:.2f} / "
        f"{_num(top)} · {statuses}"
    )
    unmarked = [f"{r.student} {q}" for r in results if r.manual_max > 0
                for q, text in r.answers.items() if text.strip() and q not in r.manual]  # fmt: skip
    if unmarked:
        print_fn(
            f"NOT MARKED YET: {len(unmarked)} answered question(s) have no mark in --manual "
            f"({', '.join(unmarked[:8])}{', ...' if len(unmarked) > 8 else ''}): blank in "
            "gradebook.csv, 'not marked yet' in the feedback, counted as 0 in the score until "
            "you fill them in and merge again"
        )
    unsandboxed = [r.student for r in results if r.sandbox == "none"]
    if unsandboxed:
        print_fn(SANDBOX_WARNING.format(n=len(unsandboxed)))
