"""Submissions: grading options, student ids, finding and reading the notebooks."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from labkit.grade.bounded import TooLarge, loads_bounded
from labkit.grade.judge import ExerciseResult
from labkit.grade.wire import read_regular_file

STATUSES = ("ok", "timeout", "error", "invalid", "not-run")
MAX_NOTEBOOK_BYTES = 50 * 2**20  # a bigger file is refused (outputs are never read anyway)
MAX_CELL_CHARS = 200_000  # one cell's source; a lab's longest cell is a few thousand
MAX_JSON_DEPTH = 64  # a notebook is nested about 6 deep; outputs and metadata a little more
MAX_JSON_ITEMS = 500_000  # JSON values in one notebook (a lab's has a few thousand)


@dataclass
class Options:
    """How to grade (``labkit grade``'s options)."""

    source: Path = Path("solutions")
    hidden_dirs: tuple[Path, ...] = ()
    timeout: float | None = None  # seconds for the whole notebook; None: from the reference
    reference_seconds: float | None = None  # the solution notebook's time here (when measured)
    exercise_timeout: float = 60.0  # seconds for one exercise's hidden tests
    jobs: int = 1
    profile: str = "smoke"
    data: str = "phantom"
    per_student_folders: bool = False
    run: bool = True  # execute the notebooks (False: hidden tests only; status "not-run")
    progress: bool = True
    max_output_bytes: int = 2_000_000  # notebook output kept while executing
    max_file_bytes: int = 2**30  # largest file a submission's processes may write
    max_memory_bytes: int = 8 * 2**30  # address space of each of a submission's processes
    max_disk_bytes: int = 2**30  # each worker's private working folder (sized tmpfs)
    max_tmp_bytes: int = 256 * 2**20  # its /tmp, and its /dev/shm
    max_ram_bytes: int = 6 * 2**30  # each worker's memory in all (a cgroup, where one can be made)
    sandbox: str = "auto"  # "auto": bubblewrap where it works; "require": refuse without; "off"
    secret: bytes | None = None  # the run's secret (labkit.grade.secret); None: drawn now
    manual: Path | None = None  # a filled-in manual_marks.csv to merge
    shard: tuple[int, int] | None = None  # (K, N): grade only shard K of N (labkit.grade.shards)


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
    sandbox: str = ""  # "bwrap", or "none" when it ran with the weaker fallback isolation
    answers: dict[str, str] = field(default_factory=dict)  # written answers by question id
    manual: dict[str, float] = field(default_factory=dict)  # hand-given marks (--manual)
    manual_max: float = 0.0  # what the hand-marked questions are worth together
    log: str = ""  # what the workers printed on stderr: for the instructor, never the student

    @property
    def score(self) -> float:
        return sum(e.points for e in self.exercises) + sum(self.manual.values())

    @property
    def max_score(self) -> float:
        return sum(e.max_points for e in self.exercises) + self.manual_max


# ---------------------------------------------------------------------------- set-up
def normalise_lab(lab: str) -> str:
    text = str(lab).strip()
    if not text.isdigit() or len(text) > 2:
        raise ValueError(f"--lab must be a lab number such as 01, got {lab!r}")
    return f"{int(text):02d}"


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HASHED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}~[0-9a-f]{8}$")  # see student_id


def student_id(name: str) -> str:
    """A safe file and CSV name for a file or folder name, one-to-one.

    A name that is already safe (letters, digits, ``. _ -``, at most 64 characters, not
    starting with a dot or dash) is its own id. Any other name is reduced to those
    characters and gets ``~`` plus 8 hex digits of its SHA-256, so ``honest!`` can never
    take the id ``honest``: ``find_submissions`` flags the rare ids that still coincide.
    """
    if _SAFE_ID.match(name):
        return name
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:48] or "student"
    return f"{text}~{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def is_student_id(text: object) -> bool:
    """Whether ``text`` is an id ``student_id`` can make (a safe name, or a hashed one)."""
    return isinstance(text, str) and bool(_SAFE_ID.match(text) or _HASHED_ID.match(text))


def find_submissions(path: str | Path, lab: str, per_student_folders: bool) -> list[Submission]:
    """Submissions in ``path``: ``*.ipynb`` files (student = file name), or one folder each.

    With ``per_student_folders`` every sub-folder is a student (its name) holding one notebook
    (when it holds several, the one named ``<lab>_*.ipynb``). Files are read now, before any
    submission runs. Symbolic links are never followed (a link is refused, not graded: it
    could point at a classmate's notebook or the solutions), nor is anything but a regular
    file read. Two names whose ids coincide (``a.ipynb`` and ``A.ipynb``, say) are both
    refused as ambiguous, never renumbered.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no submission.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"submissions {path} not found (expected a folder of .ipynb files)")
    found: list[Submission] = []
    if not path.is_dir():
        found.append(Submission(student_id(path.stem), path))
    elif per_student_folders:
        for folder in sorted(p for p in path.iterdir() if not p.name.startswith(".")):
            if folder.is_symlink() or not folder.is_dir():
                if folder.is_symlink() or folder.suffix == ".ipynb":
                    sub = Submission(student_id(folder.name), folder)
                    sub.problem = f"{folder.name} is not a folder (a link or a file); expected one folder per student"
                    found.append(sub)
                continue
            notebooks = _notebooks_in(folder)
            chosen = [p for p in notebooks if p.name.startswith(f"{lab}_")] or notebooks
            sub = Submission(student_id(folder.name), chosen[0] if chosen else folder)
            if not notebooks:
                sub.problem = f"no .ipynb notebook in the folder {folder.name}/"
            elif len(chosen) > 1:
                names = ", ".join(p.name for p in chosen)
                sub.problem = f"several notebooks in {folder.name}/ ({names}); keep one"
            found.append(sub)
    else:
        for file in sorted(p for p in path.glob("*.ipynb") if not p.name.startswith(".")):
            found.append(Submission(student_id(file.stem), file))
    if not found:
        layout = "one folder per student" if per_student_folders else ".ipynb files"
        raise FileNotFoundError(f"no submissions in {path} (expected {layout})")
    by_id: dict[str, list[Submission]] = {}
    for sub in found:  # case-insensitively: feedback files must not overwrite each other
        by_id.setdefault(sub.student.lower(), []).append(sub)
    for subs in by_id.values():
        if len(subs) > 1:
            names = ", ".join(s.path.name if not per_student_folders else s.student for s in subs)
            for sub in subs:
                sub.problem = (
                    f"ambiguous student id: {names} map to the same id; rename one and grade again"
                )
    for sub in found:
        if not sub.problem:
            sub.data, sub.problem = read_regular_file(sub.path, MAX_NOTEBOOK_BYTES)
    return found


def _notebooks_in(folder: Path) -> list[Path]:
    """``.ipynb`` entries under ``folder`` (links included, to be refused), never following links."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if f.endswith(".ipynb") and not f.startswith(".")]
        # A link to a folder is listed in dirs, never entered; a link named *.ipynb is listed.
        found += [Path(root) / d for d in dirs if d.endswith(".ipynb")]
    return sorted(found)


# ---------------------------------------------------------------------------- one student
def read_notebook(sub: Submission, lab: str) -> tuple[Any, str]:
    """``(notebook, "")``, or ``(None, why it is invalid)`` in a student's words."""
    if sub.problem:
        return None, sub.problem
    try:
        raw = loads_bounded(
            sub.data,
            max_bytes=MAX_NOTEBOOK_BYTES,
            max_items=MAX_JSON_ITEMS,
            max_depth=MAX_JSON_DEPTH,
        )
    except TooLarge as err:
        return None, f"the file is too large to grade: {err}"
    except UnicodeDecodeError:
        return None, "the file is not text (is it really a .ipynb notebook?)"
    except json.JSONDecodeError as err:
        return None, f"the file is not valid JSON (line {err.lineno}: {err.msg})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "the file is JSON but not a Jupyter notebook (no list of cells)"
    for number, cell in enumerate(raw["cells"], 1):
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        size = sum(map(len, source)) if isinstance(source, list) else len(str(source))
        if size > MAX_CELL_CHARS:
            return None, (
                f"cell {number} holds {size:,} characters; the limit is {MAX_CELL_CHARS:,}"
            )
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None  # never read, never kept
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
