"""Grade one submission, then a whole class: hidden tests, execution, gradebook, feedback."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from labkit.course.build import exercise_cells
from labkit.course.kernel import remove_dead_folders
from labkit.data.locate import ensure_phantom
from labkit.grade.judge import LabSpec, prepare_lab
from labkit.grade.manual import answers_of, apply_marks, read_marks, write_marks_template
from labkit.grade.report import run_place, write_feedback, write_gradebook, write_logs
from labkit.grade.run import execute, run_hidden_tests
from labkit.grade.sandbox import sandbox_problem
from labkit.grade.shards import select, write_record
from labkit.grade.stored import Stored, keep_earlier, read_results, write_results
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

    Work already done is kept (``labkit.grade.stored``): with ``options.manual`` a submission
    graded before (same bytes, labkit and hidden tests; ``OUT/results.json``) is not run
    again, its marks are only merged; without it, its earlier hand-given marks stay; with
    ``run=False`` its notebook's earlier run (ok, error, timeout) stays, never ``not-run``.

    Args:
        submissions: a folder of ``.ipynb`` files (or one per-student folder each, see
            ``Options.per_student_folders``), or a single notebook.
        lab: the lab number, e.g. ``"01"``.
        out: output folder for ``gradebook.csv`` and ``feedback/``.
        options: see ``Options``.

    Returns:
        One ``StudentResult`` per submission, sorted by student.

    Raises:
        ValueError: an option out of range, no sandbox with ``sandbox="require"``, an
            ``out`` inside the submissions folder, or a marks file that cannot be read
            (named by file, row and column).
        FileNotFoundError: no submissions at ``submissions``.
    """
    options = options or Options()
    lab = normalise_lab(lab)
    _check_options(options)
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
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file; expected a folder (new or a grading's own)")
    _check_out_apart(out, Path(submissions))
    out.mkdir(parents=True, exist_ok=True)  # fail early if it cannot be created
    stored = read_results(out, prepared, subs, options.secret)  # earlier, where still valid
    limits = {"timeout": options.timeout, "exercise_timeout": options.exercise_timeout}
    if any(v is not None and stored.settings.get(k, v) != v for k, v in limits.items()):
        stored = Stored()  # a limit the instructor changed: earlier runs do not stand
    reuse = stored.results if options.manual is not None else {}  # --manual: merge only
    reused = [reuse[s.student] for s in subs if s.student in reuse]
    todo = [s for s in subs if s.student not in reuse]
    if reused:
        print(
            f"--manual: {len(reused)} submission(s) unchanged since they were graded into {out}: "
            f"marks merged, nothing run again; {len(todo)} graded now",
            file=sys.stderr,
        )
    if (reused or not options.run) and options.timeout is None:  # what their feedback quotes
        kept = ("timeout", "reference_seconds")
        options = replace(options, **{k: v for k, v in stored.settings.items() if k in kept})
    results = reused
    if todo:
        graded, options = _grade_all(todo, prepared, options, problem)
        results = reused + graded
    keep_earlier(results, stored, options.run)  # hand marks; with --no-run, the runs
    results.sort(key=lambda r: r.student)
    if marks is not None:
        apply_marks(results, *marks)
    _write_outputs(out, prepared, subs, results, options, logs=todo)
    return results


def _check_out_apart(out: Path, submissions: Path) -> None:
    """Refuse an OUT inside a submissions folder: there students' files could stand for the
    grader's own records (``results.json``, gradebook, feedback)."""
    if not submissions.is_dir():
        return  # one notebook: its student controls that file, not the folder around it
    folder, target = submissions.resolve(), out.resolve()
    if target == folder or folder in target.parents:
        raise ValueError(
            f"--out {out}: inside the submissions folder {submissions}, where students' files "
            "could pass for the grader's records; choose an output folder outside it"
        )


def _check_options(options: Options) -> None:
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


def _grade_all(
    subs: list[Submission], prepared: LabSpec, options: Options, problem: str
) -> tuple[list[StudentResult], Options]:
    """Grade ``subs`` (in parallel: ``options.jobs``), each in the sandbox unless ``problem``;
    the results, and the options with the notebook time limit they were graded with."""
    if prepared.needs_data and options.data == "phantom":
        prepared.phantom_root = ensure_phantom(
            get_profile(options.profile).phantom_n, progress=options.progress
        )
    remove_dead_folders(GRADE_FOLDER_PREFIX, remove_tree)  # of gradings killed outright
    root = Path(tempfile.mkdtemp(prefix=f"{GRADE_FOLDER_PREFIX}{os.getpid()}-"))
    results: list[StudentResult] = []
    bar = tqdm(
        total=len(subs),
        desc=f"grading lab {prepared.lab}",
        unit="student",
        disable=not options.progress,
    )
    try:
        if options.run and options.timeout is None:
            options = _timed_from_the_reference(prepared, options, root, not problem)
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
    return results, options


def _write_outputs(
    out: Path, lab: LabSpec, subs: list, results: list, options: Options, logs: bool
) -> None:
    """Gradebook, feedback, the marks template, the stored results (and shard record); the
    workers' logs when anything ran (else the earlier logs stay)."""
    out.mkdir(parents=True, exist_ok=True)  # again: a submission may have deleted it
    template = out / "manual_marks.csv"
    if lab.questions and not (
        options.manual and template.resolve() == Path(options.manual).resolve()
    ):
        write_marks_template(template, [r.student for r in results], lab.questions)
    marked = options.manual is not None or any(r.manual_max > 0 for r in results)
    columns = [q.id for q in lab.questions] if marked else []
    write_gradebook(out / "gradebook.csv", results, [s.exercise for s in lab.specs], columns)
    write_feedback(out / "feedback", results, options)
    if logs:
        write_logs(out / "logs", results)
    settings = {"timeout": options.timeout, "reference_seconds": options.reference_seconds,
                "exercise_timeout": options.exercise_timeout}  # fmt: skip
    write_results(out, lab, subs, results, settings, options.secret)
    if options.shard is not None:
        write_record(out, lab, options.shard, results, settings, lab.secret)


GRADE_FOLDER_PREFIX = "labkit-grade-"  # + the grader's process id: its working folder
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
