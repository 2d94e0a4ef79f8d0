"""Grade one submission, then a whole class: hidden tests, execution, gradebook, feedback."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from labkit.course.build import exercise_cells
from labkit.data.locate import ensure_phantom
from labkit.grade.judge import LabSpec, prepare_lab
from labkit.grade.manual import answers_of, read_marks, write_marks_template
from labkit.grade.report import run_place, write_feedback, write_gradebook, write_logs
from labkit.grade.run import execute, run_hidden_tests
from labkit.grade.sandbox import sandbox_problem
from labkit.grade.shards import select, write_record
from labkit.grade.submissions import (
    Options,
    StudentResult,
    Submission,
    find_submissions,
    normalise_lab,
    read_notebook,
)
from labkit.grade.workspace import Workspace, remove_tree
from labkit.runs import get_profile


def grade_student(
    sub: Submission, lab: LabSpec, options: Options, root: Path, sandbox: bool = False
) -> StudentResult:
    """Grade one submission; never raises for anything the submission does.

    Args:
        sandbox: run the student's code under bubblewrap (``labkit.grade.sandbox``).
    """
    start = time.perf_counter()
    result = StudentResult(sub.student, lab.lab, sub.path.name, "invalid")
    result.sandbox = "bwrap" if sandbox else "none"
    nb, problem = read_notebook(sub, lab.lab)
    cells = exercise_cells(nb) if nb is not None else {}
    if nb is not None and not any(s.exercise.id in cells for s in lab.specs):
        ids = "; ".join(f"{s.exercise.title} ({s.exercise.id})" for s in lab.specs)
        problem = (
            f"none of lab {lab.lab}'s exercise cells ({ids}) is in this notebook; was the "
            "wrong notebook submitted, or were the exercise cells replaced?"
        )
    if problem:
        result.detail = problem
        result.exercises = [s.result("missing", problem) for s in lab.specs]
        return result
    result.answers = answers_of(nb, lab.questions)
    ws = Workspace(root, sub.student, lab, options, sandbox)
    try:
        result.exercises = run_hidden_tests(nb, cells, lab, options, ws, sub.student)
        result.run = execute(nb, lab, options, ws) if options.run else {"status": "not-run"}
    finally:
        result.log = ws.log
        ws.close()
    result.status = result.run["status"]
    missing = [e.id for e in result.exercises if e.status == "missing" and e.id not in cells]
    details = []
    where = run_place(result.run)
    if result.status == "error":
        details.append(f"{where}: {result.run.get('error', '')}".lstrip(": "))
    elif result.status == "timeout":
        details.append(f"timed out after {options.timeout:g} s {'in ' + where if where else ''}")
    if missing:
        details.append(f"missing exercise cell(s): {', '.join(missing)}")
    result.detail = "; ".join(details)[:300]
    result.seconds = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------- all students
def grade(
    submissions: str | Path, lab: str, out: str | Path, options: Options | None = None
) -> list[StudentResult]:
    """Grade every submission of ``lab`` in ``submissions``; write the gradebook and feedback.

    Args:
        submissions: a folder of ``.ipynb`` files (or one per-student folder each, see
            ``Options.per_student_folders``), or a single notebook.
        lab: the lab number, e.g. ``"01"``.
        out: output folder for ``gradebook.csv`` and ``feedback/``.
        options: see ``Options``.

    Returns:
        One ``StudentResult`` per submission, sorted by student.
    """
    options = options or Options()
    lab = normalise_lab(lab)
    if options.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {options.jobs}")
    if options.max_memory_bytes <= 0 or options.max_file_bytes <= 0:
        raise ValueError("--max-memory and Options.max_file_bytes must be positive")
    if min(options.max_disk_bytes, options.max_tmp_bytes) <= 0:
        raise ValueError("--max-disk must be positive (GB)")
    if options.shard is not None and options.secret is None:
        raise ValueError(
            "--shard needs --secret FILE, the same file for every shard (make it once with "
            "`labkit grade secret FILE`)"
        )
    if (options.timeout is not None and options.timeout <= 0) or options.exercise_timeout <= 0:
        raise ValueError("--timeout and --test-timeout must be positive (seconds)")
    if options.sandbox not in ("auto", "require", "off"):
        raise ValueError(
            f"Options.sandbox must be 'auto', 'require' or 'off', got {options.sandbox!r}"
        )
    problem = sandbox_problem() if options.sandbox != "off" else "the sandbox was turned off"
    if problem and options.sandbox == "require":
        raise ValueError(f"--require-sandbox: no sandbox here: {problem}")
    subs = find_submissions(submissions, lab, options.per_student_folders)
    if options.shard is not None:  # after the ids: ambiguity is judged over the whole class
        subs = select(subs, options.shard)
    prepared = prepare_lab(lab, options.source, options.hidden_dirs, options.secret)
    marks = None
    if options.manual is not None:  # checked now: a typo must not cost a whole grading run
        marks = read_marks(options.manual, prepared.questions, [s.student for s in subs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # fail early if it cannot be created
    if prepared.needs_data and options.data == "phantom":
        prepared.phantom_root = ensure_phantom(
            get_profile(options.profile).phantom_n, progress=options.progress
        )
    root = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    if options.run and options.timeout is None:
        options = _timed_from_the_reference(prepared, options, root, not problem)
    results: list[StudentResult] = []
    bar = tqdm(
        total=len(subs), desc=f"grading lab {lab}", unit="student", disable=not options.progress
    )
    try:
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            futures = {
                pool.submit(_safe_grade, s, prepared, options, root, not problem): s for s in subs
            }
            for future in as_completed(futures):
                results.append(future.result())
                bar.set_postfix_str(results[-1].student[:20])
                bar.update()
    finally:
        bar.close()
        remove_tree(root)
    results.sort(key=lambda r: r.student)
    if marks is not None:
        given, maxima = marks
        for r in results:
            mine = given.get(r.student, {})
            # a blank cell: 0 for a question left unanswered; an answered one stays unmarked
            # (blank in the gradebook, "not marked yet" in the feedback), never a silent 0
            r.manual = {
                q: mine.get(q, 0.0) for q in maxima if q in mine or not r.answers.get(q, "").strip()
            }
            r.manual_max = sum(maxima.values())
    out.mkdir(parents=True, exist_ok=True)  # again: a submission may have deleted it
    template = out / "manual_marks.csv"
    if prepared.questions and not (
        options.manual and template.resolve() == Path(options.manual).resolve()
    ):
        write_marks_template(template, [r.student for r in results], prepared.questions)
    columns = [q.id for q in prepared.questions] if marks is not None else []
    write_gradebook(out / "gradebook.csv", results, [s.exercise for s in prepared.specs], columns)
    write_feedback(out / "feedback", results, options)
    write_logs(out / "logs", results)
    if options.shard is not None:
        settings = {"timeout": options.timeout, "reference_seconds": options.reference_seconds}
        write_record(out, prepared, options.shard, results, settings, prepared.secret)
    return results


REFERENCE_FACTOR = 3.0  # a notebook may take this many times the reference's time ...
REFERENCE_MARGIN = 60.0  # ... plus this many seconds (kernel start, a busy machine)


def _timed_from_the_reference(lab: LabSpec, options: Options, root: Path, sandbox: bool) -> Options:
    """``options`` with a notebook time limit measured here: the lab's solution notebook run
    once, as a submission is, on this machine now (a busy machine gives more time)."""
    ws = Workspace(root, "reference", lab, replace(options, timeout=3600.0), sandbox)
    try:
        run = execute(lab.solution, lab, replace(options, timeout=3600.0), ws)
    finally:
        ws.close()
    if run.get("status") != "ok":
        raise ValueError(
            f"lab {lab.lab}'s solution notebook did not run to the end here ({run.get('status')}: "
            f"{str(run.get('error', ''))[:200]}), so no time limit can be measured; give --timeout"
        )
    seconds = float(run.get("seconds") or 0.0)
    timeout = REFERENCE_FACTOR * seconds + REFERENCE_MARGIN
    return replace(options, timeout=float(round(timeout)), reference_seconds=round(seconds, 1))


def _safe_grade(
    sub: Submission, lab: LabSpec, options: Options, root: Path, sandbox: bool
) -> StudentResult:
    try:
        return grade_student(sub, lab, options, root, sandbox)
    except Exception as err:  # noqa: BLE001 (a grader bug must not stop the other students)
        result = StudentResult(sub.student, lab.lab, sub.path.name, "error")
        result.sandbox = "bwrap" if sandbox else "none"
        result.detail = f"labkit grade failed on this submission: {type(err).__name__}: {err}"[:300]
        result.exercises = [
            s.result("crashed", "the grader failed; ask your instructor") for s in lab.specs
        ]
        return result
