"""`labkit build`: student stubs, no solution leaks, deterministic files, --check, nbval."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit.cli import main as cli_main
from labkit.course.build import BuildError, build, build_lab, exercise_cells
from labkit.course.colab import CourseConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPOSITORY = "https://github.com/a-teacher/covid-course"  # the course's [tool.labkit]
DEMO = FIXTURES / "labs" / "00_demo.py"

# Lines that exist only between the markers of the demo lab: none may reach students.
SOLUTION_LINES = [
    "span = float(x.max() - x.min())",
    "return (x - x.min()) / span if span > 0 else np.zeros_like(x)",
    "return (masks > 0).reshape(len(masks), -1).sum(axis=1).astype(np.int64)",
    "total = pred.sum() + truth.sum()",
    "Infection covers few pixels",
]


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course tree with the demo lab as solutions/00_demo.py."""
    (tmp_path / "solutions").mkdir()
    shutil.copy(DEMO, tmp_path / "solutions" / DEMO.name)
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.labkit]\nrepository = "{REPOSITORY}"\nbranch = "spring-26"\n'
    )
    return tmp_path


def _build(root: Path, check: bool = False):
    return build(root / "solutions", root / "notebooks", check=check)


def test_student_notebook_has_stubs_and_no_solution_code(course):
    _build(course)
    student = (course / "notebooks" / "00_demo.ipynb").read_text()
    solution = (course / "solutions" / "00_demo.ipynb").read_text()
    source = DEMO.read_text()
    for line in SOLUTION_LINES:
        assert line in source  # the fixture really has it, so its absence below means something
        assert line in solution
        assert line not in student, f"solution line leaked into the student notebook: {line}"
    for text in (student, solution):
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    nb = nbformat.read(course / "notebooks" / "00_demo.ipynb", as_version=4)
    cells = exercise_cells(nb)
    assert list(cells) == ["00.scale", "00.count_positive", "00.dice"]
    # The stub sits at the marker's indentation, after the code outside the markers.
    assert cells["00.dice"].source.splitlines()[-3:] == [
        "    pred, truth = pred.astype(bool), truth.astype(bool)",
        "    # YOUR CODE HERE",
        "    raise NotImplementedError()",
    ]
    assert "YOUR ANSWER HERE" in nb.cells[-1].source
    assert nb.metadata["labkit"] == {
        "lab": "00",
        "kind": "student",
        "exercises": ["00.scale", "00.count_positive", "00.dice"],
    }


def test_badge_install_cell_and_clean_deterministic_json(course):
    _build(course)
    path = course / "notebooks" / "00_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    badge = nb.cells[0].source
    # Badge and install cell name the repository and branch of the course's pyproject.toml.
    assert (
        "colab.research.google.com/github/a-teacher/covid-course/blob/spring-26/"
        "notebooks/00_demo.ipynb" in badge
    )
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert f'"labkit @ git+{REPOSITORY}@spring-26"' in code[0].source
    assert "COLAB_RELEASE_TAG" in code[0].source
    assert "parameters" in code[1].metadata["tags"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert [c.id for c in nb.cells[:3]] == ["00_demo-badge", "00_demo-000", "00_demo-install"]
    solution = nbformat.read(course / "solutions" / "00_demo.ipynb", as_version=4)
    assert "Open In Colab" not in solution.cells[0].source
    # The same source cell has the same id in both notebooks (graders map cells by id).
    assert {c.id for c in solution.cells} <= {c.id for c in nb.cells}
    text = path.read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    first = text
    path.unlink()
    _build(course)
    assert path.read_text() == first  # byte-identical on rebuild


def test_check_passes_after_build_and_fails_after_edit_or_removal(course, capsys):
    root = str(course)
    args = ["build", "--source", f"{root}/solutions", "--notebooks", f"{root}/notebooks"]
    assert cli_main([*args, "--check"]) == 1  # nothing built yet: both files missing
    out = capsys.readouterr().out
    assert "00_demo.ipynb" in out and "stale or missing" in out
    assert cli_main(args) == 0
    assert cli_main([*args, "--check"]) == 0
    src = course / "solutions" / "00_demo.py"
    src.write_text(src.read_text().replace("Dice of two binary masks", "Dice of two masks"))
    capsys.readouterr()
    assert cli_main([*args, "--check"]) == 1
    out = capsys.readouterr().out
    assert f"{root}/notebooks/00_demo.ipynb" in out and f"{root}/solutions/00_demo.ipynb" in out
    assert cli_main(args) == 0
    assert cli_main([*args, "--check"]) == 0
    src.unlink()  # a generated notebook whose source is gone is reported too
    assert cli_main([*args, "--check"]) == 1
    assert "no source for generated notebook" in capsys.readouterr().out


@pytest.mark.parametrize(
    "edit, message",
    [
        (("    ### END SOLUTION\n", "", 1), "never closed"),
        (("    ### BEGIN SOLUTION\n    x = x", "### BEGIN SOLUTION\nx = x", 1), "top level"),
        (('exercise="00.scale"', 'exercise="01.scale"', 1), "must look like '00.name'"),
        (('tags=["exercise"] exercise="00.dice"', "", 1), "without exercise="),
        (('exercise="00.dice"', 'exercise="00.scale"', 1), "defined twice"),
        (('# %% tags=["parameters"]', "# %%", 1), "no cell tagged 'parameters'"),
    ],
)
def test_broken_sources_are_refused_with_the_file_named(tmp_path, edit, message):
    text = DEMO.read_text()
    old, new, count = edit
    assert old in text
    bad = tmp_path / "00_demo.py"
    bad.write_text(text.replace(old, new, count))
    config = CourseConfig(REPOSITORY)
    with pytest.raises(BuildError, match=message) as info:
        build_lab(bad, tmp_path / "notebooks", config)
    assert str(bad) in str(info.value)


def test_unknown_lab_number_is_a_clear_error(course):
    with pytest.raises(ValueError, match="no lab source for lab"):
        build(course / "solutions", course / "notebooks", labs=["07"])


def demo_kernel_env() -> dict[str, str]:
    """Environment in which a kernel finds the demo lab's exercises."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    env["LABKIT_EXERCISE_MODULES"] = "demo_exercises"
    env["LABKIT_PROFILE"] = "smoke"
    return env


@pytest.mark.slow
def test_generated_notebooks_pass_nbval_lax(course):
    # The README's command, on the demo lab: stubs fall back, so the student notebook runs too.
    _build(course)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        "notebooks/",
        "solutions/",
    ]
    proc = subprocess.run(cmd, cwd=course, env=demo_kernel_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cells = sum(
        c.cell_type == "code"
        for folder in ("notebooks", "solutions")
        for c in nbformat.read(course / folder / "00_demo.ipynb", as_version=4).cells
    )
    assert f"{cells} passed" in proc.stdout  # nbval: one test per code cell
