"""``labkit grade``: mark students' lab notebooks with hidden tests; write a gradebook and feedback.

For each submitted notebook (one per student) the grader

1. reads the file (never its stored outputs); a file that is not JSON, not a notebook, of
   another lab or without any of the lab's exercise cells is ``invalid``;
2. finds each exercise cell statically (``labkit.build.exercise_cells``) and runs the lab's
   hidden tests (``labkit.hidden_tests``) on the student's *own* definitions from that cell,
   in a fresh worker process (``labkit.grade_worker``: one forked child per exercise, a time
   limit each, the reference blocked). The worker only reports what the student's code
   returned; the verdicts are reached here, against expected values this process computed
   from the references before any student code ran. An exercise scores its ``points`` when
   every test passes, else 0;
3. executes the whole notebook on a fresh Jupyter kernel in another worker, in a temporary
   working copy, with a deadline for the notebook: the row's status is ``ok``, ``error`` (a
   cell raised; the last traceback lines go to the feedback) or ``timeout``. A notebook that
   stops early still gets the points of every exercise whose cell passes the hidden tests:
   only what could not be graded scores 0.

Trust: nothing a notebook prints or stores is read for marks: not its outputs, not
``lk.checks.RESULTS``, not what a kernel's ``check`` returned. Workers get a stripped
environment, a private copy of labkit (and of the exercise and hidden-test modules) taken when
grading started, temporary folders of their own, no core dumps and a file-size limit; their
process groups are killed when they finish or time out. Submissions are read into memory
before any of them runs, and the gradebook and feedback are written at the end, so a
notebook that deletes or writes files cannot change another student's marks or the reports.
This is not a sandbox against a determined attacker with the grader's user rights (a daemon
that escapes its process group could still touch files): for that, grade inside a container.

Writes ``OUT/gradebook.csv`` (student, lab, one column per exercise, score, max_score,
status, seconds, detail) and ``OUT/feedback/<student>.md`` (``OUT/feedback`` is rewritten on
every run), and prints a summary table.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from labkit.build import exercise_cells
from labkit.grade_judge import ExerciseResult, LabSpec, prepare_lab
from labkit.grade_report import write_feedback, write_gradebook, write_summary
from labkit.grade_run import Workspace, execute, run_hidden_tests

STATUSES = ("ok", "timeout", "error", "invalid", "not-run")
MAX_NOTEBOOK_BYTES = 100 * 2**20  # a bigger file is refused (outputs are never read anyway)


@dataclass
class Options:
    """How to grade (``labkit grade``'s options)."""

    source: Path = Path("solutions")
    hidden_dirs: tuple[Path, ...] = ()
    timeout: float = 600.0  # seconds for the whole notebook
    exercise_timeout: float = 60.0  # seconds for one exercise's hidden tests
    jobs: int = 1
    profile: str = "smoke"
    data: str = "phantom"
    per_student_folders: bool = False
    run: bool = True  # execute the notebooks (False: hidden tests only; status "not-run")
    progress: bool = True
    max_output_bytes: int = 2_000_000  # notebook output kept while executing
    max_file_bytes: int = 2 * 2**30  # largest file a submission's processes may write


@dataclass
class Submission:
    student: str
    path: Path
    data: bytes | None = None
    problem: str = ""  # set when the file cannot even be read


@dataclass
class StudentResult:
    student: str
    lab: str
    file: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    exercises: list[ExerciseResult] = field(default_factory=list)
    run: dict = field(default_factory=dict)  # what the notebook's execution showed

    @property
    def score(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_score(self) -> float:
        return sum(e.max_points for e in self.exercises)


# ---------------------------------------------------------------------------- set-up
def normalise_lab(lab: str) -> str:
    text = str(lab).strip()
    if not text.isdigit() or len(text) > 2:
        raise ValueError(f"--lab must be a lab number such as 01, got {lab!r}")
    return f"{int(text):02d}"


def student_id(name: str) -> str:
    """A safe file and CSV name from a file or folder name: letters, digits, ``. _ -``."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return text[:64] or "student"


def find_submissions(path: str | Path, lab: str, per_student_folders: bool) -> list[Submission]:
    """Submissions in ``path``: ``*.ipynb`` files (student = file name), or one folder each.

    With ``per_student_folders`` every sub-folder is a student (its name) holding one notebook
    (when it holds several, the one named ``<lab>_*.ipynb``). Files are read now, before any
    submission runs.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no submission.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"submissions {path} not found (expected a folder of .ipynb files)")
    found: list[Submission] = []
    if path.is_file():
        found.append(Submission(student_id(path.stem), path))
    elif per_student_folders:
        for folder in sorted(p for p in path.iterdir() if p.is_dir() and not _hidden(p)):
            notebooks = sorted(p for p in folder.rglob("*.ipynb") if not _hidden(p, folder))
            chosen = [p for p in notebooks if p.name.startswith(f"{lab}_")] or notebooks
            sub = Submission(student_id(folder.name), chosen[0] if chosen else folder)
            if not notebooks:
                sub.problem = f"no .ipynb notebook in the folder {folder.name}/"
            elif len(chosen) > 1:
                names = ", ".join(p.name for p in chosen)
                sub.problem = f"several notebooks in {folder.name}/ ({names}); keep one"
            found.append(sub)
    else:
        for file in sorted(p for p in path.glob("*.ipynb") if not _hidden(p)):
            found.append(Submission(student_id(file.stem), file))
    if not found:
        layout = "one folder per student" if per_student_folders else ".ipynb files"
        raise FileNotFoundError(f"no submissions in {path} (expected {layout})")
    seen: dict[str, int] = {}
    for sub in found:  # two names that sanitise alike must not share a row
        n = seen[sub.student] = seen.get(sub.student, 0) + 1
        if n > 1:
            sub.student = f"{sub.student}-{n}"
        if not sub.problem:
            try:
                size = sub.path.stat().st_size
                if size > MAX_NOTEBOOK_BYTES:
                    sub.problem = f"the file is {size / 2**20:.0f} MB; the limit is 100 MB"
                else:
                    sub.data = sub.path.read_bytes()
            except OSError as err:
                sub.problem = f"the file could not be read ({err.strerror or err})"
    return found


def _hidden(path: Path, base: Path | None = None) -> bool:
    parts = path.relative_to(base).parts if base else (path.name,)
    return any(p.startswith(".") for p in parts)


# ---------------------------------------------------------------------------- one student
def read_notebook(sub: Submission, lab: str) -> tuple[Any, str]:
    """``(notebook, "")``, or ``(None, why it is invalid)`` in a student's words."""
    if sub.problem:
        return None, sub.problem
    try:
        raw = json.loads(sub.data.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "the file is not text (is it really a .ipynb notebook?)"
    except json.JSONDecodeError as err:
        return None, f"the file is not valid JSON (line {err.lineno}: {err.msg})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "the file is JSON but not a Jupyter notebook (no list of cells)"
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 (nbformat raises several kinds)
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, f"the file is not a valid Jupyter notebook ({text[:200]})"
    their_lab = nb.metadata.get("labkit", {}).get("lab") if isinstance(nb.metadata, dict) else None
    if isinstance(their_lab, str) and their_lab != lab:
        return None, f"this is the notebook of lab {their_lab}, not lab {lab}"
    return nb, ""


def grade_student(sub: Submission, lab: LabSpec, options: Options, root: Path) -> StudentResult:
    """Grade one submission; never raises for anything the submission does."""
    start = time.perf_counter()
    result = StudentResult(sub.student, lab.lab, sub.path.name, "invalid")
    nb, problem = read_notebook(sub, lab.lab)
    cells = exercise_cells(nb) if nb is not None else {}
    if nb is not None and not any(s.exercise.id in cells for s in lab.specs):
        ids = ", ".join(s.exercise.id for s in lab.specs)
        problem = (
            f"none of lab {lab.lab}'s exercise cells ({ids}) is in this notebook; was the "
            "wrong notebook submitted, or were the exercise cells replaced?"
        )
    if problem:
        result.detail = problem
        result.exercises = [
            ExerciseResult(
                s.exercise.id, s.exercise.title, float(s.exercise.points), "missing", problem
            )
            for s in lab.specs
        ]
        return result
    ws = Workspace(root, sub.student, lab, options)
    try:
        result.exercises = run_hidden_tests(nb, cells, lab, options, ws)
        result.run = execute(nb, lab, options, ws) if options.run else {"status": "not-run"}
    finally:
        ws.close()
    result.status = result.run["status"]
    missing = [e.id for e in result.exercises if e.status == "missing" and e.id not in cells]
    details = []
    cell = result.run.get("cell", -1)
    where = f"cell {cell + 1}" if isinstance(cell, int) and cell >= 0 else ""
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
    from tqdm.auto import tqdm

    options = options or Options()
    lab = normalise_lab(lab)
    if options.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {options.jobs}")
    if options.timeout <= 0 or options.exercise_timeout <= 0:
        raise ValueError("--timeout and --test-timeout must be positive (seconds)")
    subs = find_submissions(submissions, lab, options.per_student_folders)
    prepared = prepare_lab(lab, options.source, options.hidden_dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # fail early if it cannot be created
    if prepared.needs_data and options.data == "phantom":
        from labkit.data.locate import ensure_phantom
        from labkit.profiles import get_profile

        prepared.phantom_root = ensure_phantom(
            get_profile(options.profile).phantom_n, progress=options.progress
        )
    root = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    results: list[StudentResult] = []
    bar = tqdm(
        total=len(subs), desc=f"grading lab {lab}", unit="student", disable=not options.progress
    )
    try:
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            futures = {pool.submit(_safe_grade, s, prepared, options, root): s for s in subs}
            for future in as_completed(futures):
                results.append(future.result())
                bar.set_postfix_str(results[-1].student[:20])
                bar.update()
    finally:
        bar.close()
        shutil.rmtree(root, ignore_errors=True)
    results.sort(key=lambda r: r.student)
    out.mkdir(parents=True, exist_ok=True)  # again: a submission may have deleted it
    write_gradebook(out / "gradebook.csv", results, [s.exercise for s in prepared.specs])
    write_feedback(out / "feedback", results, options)
    return results


def _safe_grade(sub: Submission, lab: LabSpec, options: Options, root: Path) -> StudentResult:
    try:
        return grade_student(sub, lab, options, root)
    except Exception as err:  # noqa: BLE001 (a grader bug must not stop the other students)
        result = StudentResult(sub.student, lab.lab, sub.path.name, "error")
        result.detail = f"labkit grade failed on this submission: {type(err).__name__}: {err}"[:300]
        result.exercises = [
            ExerciseResult(
                s.exercise.id,
                s.exercise.title,
                float(s.exercise.points),
                "crashed",
                "the grader failed; ask your instructor",
            )
            for s in lab.specs
        ]
        return result


__all__ = [
    "ExerciseResult",
    "Options",
    "StudentResult",
    "find_submissions",
    "grade",
    "student_id",
    "write_summary",
]
