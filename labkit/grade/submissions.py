"""Submissions: grading options, student ids, finding and reading the notebooks."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from labkit.grade.judge import ExerciseResult

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
