"""Build student and instructor notebooks from one source per lab (``labkit build``).

One source of truth per lab: ``solutions/NN_name.py`` in jupytext "percent" format. From it
``labkit build`` writes two notebooks:

* ``notebooks/NN_name.ipynb`` (students): an "Open in Colab" badge first, the Colab install
  cell before the first code cell, and every solution block replaced by a stub. Badge and
  install cell come from the course's ``[tool.labkit]`` configuration in ``pyproject.toml``
  (``labkit.course.colab``), found from the lab sources' folder upwards.
* ``solutions/NN_name.ipynb`` (instructors, CI, ``labkit course run``): the same cells with
  the markers removed, so it runs as written.

Markers (nbgrader's spelling), in code cells::

    # %% tags=["exercise"] exercise="01.minmax_scale"
    def minmax_scale(x):
        ### BEGIN SOLUTION
        return (x - x.min()) / (x.max() - x.min())
        ### END SOLUTION

become, for students, ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the marker's
indentation. A code cell with markers must carry ``exercise="NN.name"`` (NN = the lab's
number) so graders find it without running anything, and its markers must sit inside a
function or class body: a top-level stub would raise and stop the student notebook. In a
markdown cell a ``### BEGIN SOLUTION`` / ``### END SOLUTION`` block becomes "YOUR ANSWER HERE".

Every lab needs a code cell tagged ``parameters`` (``PROFILE`` / ``DATA``): ``labkit course
run`` and papermill inject their values after it.

Generated files are deterministic, so ``labkit build --check`` can compare bytes: no
outputs, execution counts ``None``, cell ids ``<stem>-NNN`` from the cell's position in the
source (the same id in the student and the solution notebook), fixed metadata, nbformat 4.5,
sorted keys. Cell metadata keeps only ``tags``, ``exercise`` and a few display keys; the
notebook's ``metadata.labkit`` says the lab, the kind and its exercise ids.

This module imports no torch: building is fast and works anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit.course.colab import CourseConfig, badge_markdown, find_config, install_cell_source

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"
EXERCISE_KEY = "exercise"  # cell metadata key holding the exercise id
PARAMETERS_TAG = "parameters"
LAB_FILE = re.compile(r"^(?P<lab>\d\d)_(?P<name>[a-z0-9_]+)\.py$")
EXERCISE_ID = re.compile(r"^(?P<lab>\d\d)\.[A-Za-z_][A-Za-z0-9_]*$")

# Cell metadata that survives into the notebooks; jupytext's layout keys do not.
_KEEP_CELL_METADATA = ("tags", EXERCISE_KEY, "jupyter", "slideshow", "editable", "deletable")
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class BuildError(ValueError):
    """A lab source breaks a rule; the message names the file and cell."""


@dataclass
class Lab:
    """One lab source file and what it generates."""

    source: Path
    lab: str  # "01"
    stem: str  # "01_data_exploration"
    student: Path
    solution: Path
    exercises: list[str] = field(default_factory=list)


def find_labs(source_dir: str | Path, labs: list[str] | None = None) -> list[Path]:
    """Lab sources ``NN_name.py`` in ``source_dir``, sorted; ``labs`` filters by number.

    Raises:
        FileNotFoundError: ``source_dir`` is not a folder.
        ValueError: a lab number in ``labs`` has no source.
    """
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(
            f"lab source folder {source_dir} not found (expected solutions/NN_name.py files; "
            "run from the repository root or pass --source)"
        )
    found = sorted(p for p in source_dir.glob("*.py") if LAB_FILE.match(p.name))
    if labs:
        wanted = {f"{int(x):02d}" if x.isdigit() else x for x in labs}
        have = {LAB_FILE.match(p.name)["lab"] for p in found}
        missing = sorted(wanted - have)
        if missing:
            raise ValueError(
                f"no lab source for lab(s) {', '.join(missing)} in {source_dir}; "
                f"available: {', '.join(sorted(have)) or 'none'}"
            )
        found = [p for p in found if LAB_FILE.match(p.name)["lab"] in wanted]
    return found


def lab_info(source: str | Path, notebooks_dir: str | Path = "notebooks") -> Lab:
    """Names of the files one lab source generates (nothing is read or written)."""
    source = Path(source)
    m = LAB_FILE.match(source.name)
    if not m:
        raise BuildError(f"{source}: a lab source must be named NN_name.py (e.g. 01_data.py)")
    return Lab(
        source=source,
        lab=m["lab"],
        stem=source.stem,
        student=Path(notebooks_dir) / f"{source.stem}.ipynb",
        solution=source.with_suffix(".ipynb"),
    )


# ---------------------------------------------------------------------------- markers
def _replace_blocks(text: str, where: str, code: bool) -> tuple[str, str]:
    """(solution text without markers, student text with stubs) for one cell's source."""
    solution, student = [], []
    inside: int | None = None  # line number of the open BEGIN marker
    for number, line in enumerate(text.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside is not None:
                raise BuildError(f"{where}, line {number}: {BEGIN} inside another block")
            inside = number
            indent = line[: len(line) - len(line.lstrip())]
            if code and not indent:
                raise BuildError(
                    f"{where}, line {number}: {BEGIN} at top level; put solution code inside "
                    "the exercise's function so the student's stub can raise "
                    "NotImplementedError without stopping the notebook"
                )
            if code:
                student.extend(indent + stub for stub in CODE_STUB)
            else:
                student.append(indent + MARKDOWN_STUB)
            continue
        if marker == END:
            if inside is None:
                raise BuildError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = None
            continue
        solution.append(line)
        if inside is None:
            student.append(line)
    if inside is not None:
        raise BuildError(f"{where}, line {inside}: {BEGIN} is never closed by {END}")
    return "\n".join(solution), "\n".join(student)


def _has_markers(text: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in text.splitlines())


# ---------------------------------------------------------------------------- building
def _clean_metadata(metadata: dict) -> dict:
    return {k: metadata[k] for k in _KEEP_CELL_METADATA if k in metadata}


def _notebook(cells: list, lab: Lab, kind: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": dict(_KERNELSPEC),
        "language_info": {"name": "python"},
        # Colab opens the notebook on a GPU runtime when one is available.
        "accelerator": "GPU",
        "colab": {"gpuType": "T4", "provenance": []},
        "labkit": {"lab": lab.lab, "kind": kind, "exercises": list(lab.exercises)},
    }
    return nb


def build_lab(
    source: str | Path, notebooks_dir: str | Path = "notebooks", config: CourseConfig | None = None
) -> tuple[Lab, nbformat.NotebookNode, nbformat.NotebookNode]:
    """Read one lab source and return ``(lab, student_notebook, solution_notebook)``.

    Args:
        source: the lab source ``NN_name.py``.
        notebooks_dir: folder of the student notebooks (names the badge's target).
        config: where the course is published; None = ``find_config(source)``. Without a
            ``[tool.labkit]`` table above the source (``labkit course run`` or the grader on
            any folder) the student notebook gets no badge and an install cell that takes
            only an uploaded wheel; ``build`` (which writes the files) requires the table.
        BuildError: unbalanced or misplaced markers, a marked cell without an exercise id,
            an exercise id of another lab, a duplicate id, or no ``parameters`` cell.
    """
    lab = lab_info(source, notebooks_dir)
    config = config or find_config(lab.source, required=False)
    text = lab.source.read_text(encoding="utf-8")
    src = jupytext.reads(text, fmt="py:percent")
    student_cells: list = []
    solution_cells: list = []
    has_parameters = False
    install_added = False
    for index, cell in enumerate(src.cells):
        where = f"{lab.source}, cell {index + 1}"
        meta = _clean_metadata(dict(cell.metadata))
        tags = meta.get("tags", [])
        exercise = meta.get(EXERCISE_KEY)
        if cell.cell_type == "code" and not install_added:
            # The Colab install cell must run before the first `import labkit`.
            for cells in (student_cells, solution_cells):
                install = new_code_cell(install_cell_source(config), metadata={"tags": ["setup"]})
                install.id = f"{lab.stem}-install"[:64]
                cells.append(install)
            install_added = True
        if PARAMETERS_TAG in tags:
            has_parameters = True
        if exercise is not None:
            m = EXERCISE_ID.match(str(exercise))
            if not m or m["lab"] != lab.lab:
                raise BuildError(
                    f"{where}: exercise id {exercise!r} must look like '{lab.lab}.name' "
                    f"(this lab's number, a dot, a Python name)"
                )
        if cell.cell_type == "code" and _has_markers(cell.source):
            if exercise is None:
                raise BuildError(
                    f'{where}: solution markers in a code cell without exercise="{lab.lab}.name" '
                    "in its cell header (graders find exercises by this id)"
                )
            if "exercise" not in tags:
                meta["tags"] = [*tags, "exercise"]
        if "exercise" in meta.get("tags", []):
            if exercise is None:
                raise BuildError(f"{where}: tagged 'exercise' but has no exercise id")
            if exercise in lab.exercises:
                raise BuildError(f"{where}: exercise {exercise!r} is defined twice")
            lab.exercises.append(str(exercise))
        if cell.cell_type in ("code", "markdown"):
            solution_text, student_text = _replace_blocks(
                cell.source, where, code=cell.cell_type == "code"
            )
        else:
            solution_text = student_text = cell.source
        make = new_code_cell if cell.cell_type == "code" else new_markdown_cell
        for cells, body in ((student_cells, student_text), (solution_cells, solution_text)):
            new = make(body, metadata=dict(meta))
            new.id = f"{lab.stem[:56]}-{index:03d}"
            cells.append(new)
    if not has_parameters:
        raise BuildError(
            f"{lab.source}: no cell tagged 'parameters' (add '# %% tags=[\"parameters\"]' "
            "with PROFILE = None and DATA = None before the set-up call)"
        )
    if config is not None:
        badge = new_markdown_cell(badge_markdown(config, f"notebooks/{lab.student.name}"))
        badge.id = f"{lab.stem}-badge"[:64]
        student_cells.insert(0, badge)
    student = _notebook(student_cells, lab, "student")
    solution = _notebook(solution_cells, lab, "solution")
    for nb in (student, solution):
        nbformat.validate(nb)
    return lab, student, solution


def dumps(nb: nbformat.NotebookNode) -> str:
    """Deterministic JSON text of a notebook (sorted keys, one-space indent, final newline)."""
    return nbformat.writes(nb, version=4) + "\n"


# ---------------------------------------------------------------------------- files
@dataclass
class BuildReport:
    """What ``build`` wrote (or, with ``check=True``, would write)."""

    labs: list[Lab]
    written: list[Path]
    stale: list[Path]  # out of date or missing (check mode)
    orphans: list[Path]  # generated-looking notebooks without a source

    @property
    def ok(self) -> bool:
        return not self.stale and not self.orphans


def build(
    source_dir: str | Path = "solutions",
    notebooks_dir: str | Path = "notebooks",
    labs: list[str] | None = None,
    check: bool = False,
) -> BuildReport:
    """Generate (or with ``check=True`` only compare) every lab's notebooks.

    Args:
        source_dir: folder of ``NN_name.py`` lab sources; solution notebooks go beside them.
        notebooks_dir: folder for the student notebooks.
        labs: lab numbers to build (default: all).
        check: write nothing; report generated files that are missing or differ.
    """
    source_dir, notebooks_dir = Path(source_dir), Path(notebooks_dir)
    sources = find_labs(source_dir, labs)
    config = find_config(source_dir) if sources else None
    report = BuildReport(labs=[], written=[], stale=[], orphans=[])
    for src in sources:
        lab, student, solution = build_lab(src, notebooks_dir, config)
        report.labs.append(lab)
        for path, nb in ((lab.student, student), (lab.solution, solution)):
            text = dumps(nb)
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current == text:
                continue
            if check:
                report.stale.append(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                report.written.append(path)
    if not labs:  # orphans only make sense when every lab was considered
        stems = {lab.stem for lab in report.labs}
        for folder in (notebooks_dir, source_dir):
            for nb_path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else []:
                if LAB_FILE.match(nb_path.with_suffix(".py").name) and nb_path.stem not in stems:
                    report.orphans.append(nb_path)
    return report


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """Exercise id -> code cell, found statically from cell metadata (for graders).

    A cell counts when it is a code cell tagged ``exercise`` with an ``exercise`` id, as
    ``labkit build`` writes them; the student's function is defined in that cell.
    """
    found: dict[str, nbformat.NotebookNode] = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        if cell.get("cell_type") == "code" and "exercise" in meta.get("tags", []):
            exercise = meta.get(EXERCISE_KEY)
            if isinstance(exercise, str) and exercise not in found:
                found[exercise] = cell
    return found


def section_above(nb: nbformat.NotebookNode, index: int) -> str:
    """The last Markdown heading above cell ``index``: the section a student sees it in."""
    for cell in reversed(nb.cells[: max(index, 0)]):
        if cell.get("cell_type") == "markdown":
            for line in reversed(str(cell.source).splitlines()):
                if line.lstrip().startswith("#"):
                    return line.lstrip().lstrip("#").strip()[:120]
    return ""


def exercise_sections(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Exercise id -> the section heading above its cell (``section_above``)."""
    cells = exercise_cells(nb)
    where = {id(cell): i for i, cell in enumerate(nb.cells)}
    return {eid: section_above(nb, where[id(cell)]) for eid, cell in cells.items()}
