"""The course's [tool.labkit] configuration and the Colab install cell, run for real.

The install cell runs in a subprocess with COLAB_RELEASE_TAG set and pip in dry-run mode
(``PIP_DRY_RUN``, offline), so pip resolves the real request against this venv but installs
nothing. ``make colab-check`` runs the same cell without dry-run in a venv of Colab's versions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from labkit.cli import main as cli_main
from labkit.course.build import build_lab
from labkit.course.colab import (
    KEEP,
    CourseConfig,
    badge_markdown,
    find_config,
    install_cell_source,
    read_config,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = CourseConfig("https://github.com/a-teacher/covid-course", "spring-26")


def test_the_repository_is_read_from_the_nearest_pyproject(tmp_path):
    course = tmp_path / "course"
    (course / "solutions" / "deep").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.labkit]\nrepository = "https://github.com/a/b"\n'
    )
    (course / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.labkit]\n'
        'repository = "https://github.com/a-teacher/covid-course.git"\nbranch = "spring-26"\n'
    )
    found = find_config(course / "solutions" / "deep")
    assert (found.github_path, found.branch) == ("a-teacher/covid-course", "spring-26")
    assert found.source == course / "pyproject.toml"  # the nearest one wins
    (course / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no table: go up
    assert find_config(course / "solutions").github_path == "a/b"
    assert badge_markdown(find_config(course), "notebooks/01_x.ipynb").endswith(
        "(https://colab.research.google.com/github/a/b/blob/main/notebooks/01_x.ipynb)"
    )
    # This repository's own configuration is what `labkit build` used for notebooks/.
    ours = read_config(ROOT / "pyproject.toml")
    first = (ROOT / "notebooks" / "01_data_exploration.ipynb").read_text()
    assert ours is not None and f"github/{ours.github_path}/blob/{ours.branch}/" in first


@pytest.mark.parametrize(
    "table, message",
    [
        ('repository = "github.com/a/b"', "must look like 'https://github.com/OWNER/REPO'"),
        ('repository = "https://gitlab.com/a/b"', "must look like"),
        ('repository = "https://github.com/a/b"\nbranch = "a b"', "must be a git branch name"),
        ('repository = "https://github.com/a/b"\nrepo = "x"', "unknown key.*repo"),
        ('branch = "main"', "needs repository"),
    ],
)
def test_bad_configuration_names_the_file_and_the_problem(tmp_path, table, message):
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.labkit]\n{table}\n")
    with pytest.raises(ValueError, match=message) as info:
        read_config(path)
    assert str(path) in str(info.value)


def test_build_without_configuration_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    demo = ROOT / "tests" / "fixtures" / "labs" / "00_demo.py"
    (tmp_path / "solutions" / demo.name).write_text(demo.read_text())
    args = ["build", "--source", str(tmp_path / "solutions"), "--notebooks", str(tmp_path / "nb")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "no pyproject.toml with a [tool.labkit] table" in err and "Traceback" not in err
    assert not (tmp_path / "nb").exists()


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory) -> Path:
    """A folder holding a real labkit wheel built from this checkout (the upload route)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def _run_cell(
    cwd: Path, colab: bool = True, config: CourseConfig | None = CONFIG
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_DRY_RUN="1", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(cwd))
    env.pop("COLAB_RELEASE_TAG", None)
    if colab:
        env["COLAB_RELEASE_TAG"] = "test"
    return subprocess.run(
        [sys.executable, "-c", install_cell_source(config)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_install_cell_pins_metadata_versions_and_uses_an_uploaded_wheel(wheel_dir):
    run = _run_cell(wheel_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    wheel = next(wheel_dir.glob("labkit-*.whl")).name
    pins = [f"{name}=={metadata.version(name)}" for name in KEEP]
    # Distribution versions, as pip sees them: torch.__version__ may carry a local label
    # ("2.14.1+cu130") that the metadata lacks, and pip cannot find that version.
    assert f"Installing {wheel}, keeping {', '.join(pins)}" in run.stdout
    assert "Colab's packages unchanged." in run.stdout


def test_install_cell_explains_a_pip_failure_and_does_nothing_outside_colab(tmp_path):
    (tmp_path / "labkit-9.9.9-py3-none-any.whl").write_bytes(b"not a zip file")
    run = _run_cell(tmp_path)
    assert run.returncode != 0
    assert "pip could not install labkit next to Colab's own packages" in run.stderr
    assert "send the message above to your instructor" in run.stderr
    quiet = _run_cell(tmp_path, colab=False)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_without_a_repository_the_cell_takes_only_an_uploaded_wheel(tmp_path, wheel_dir):
    # No [tool.labkit] above the sources (labkit course run, the grader): no badge, and
    # an install cell that asks for the wheel instead of naming a repository.
    source = tmp_path / "00_demo.py"
    source.write_text((ROOT / "tests" / "fixtures" / "labs" / "00_demo.py").read_text())
    _, student, _ = build_lab(source, tmp_path / "notebooks")
    text = "\n".join(cell.source for cell in student.cells)
    assert "Open In Colab" not in text and "git+" not in text
    assert install_cell_source(None) in text
    (tmp_path / "empty").mkdir()
    missing = _run_cell(tmp_path / "empty", config=None)
    assert missing.returncode != 0 and "upload the labkit-*.whl" in missing.stderr
    uploaded = _run_cell(wheel_dir, config=None)
    assert uploaded.returncode == 0 and "Colab's packages unchanged." in uploaded.stdout


def test_labkit_and_the_install_cell_are_python_310_syntax():
    import ast

    ast.parse(install_cell_source(CONFIG), feature_version=(3, 10))
    modules = sorted((ROOT / "labkit").rglob("*.py"))
    assert len(modules) > 50
    # Modules Python 3.12/3.13 removed (PEP 594, distutils): Colab runs 3.13.
    removed = {"aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap",
               "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau",
               "telnetlib", "uu", "xdrlib", "lib2to3", "distutils", "asynchat", "asyncore",
               "imp", "smtpd"}  # fmt: skip
    for path in modules:  # nothing newer than 3.10 (Colab runs 3.13, labkit supports 3.10)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 10))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            gone = {n.split(".")[0] for n in names} & removed
            assert not gone, f"{path}:{node.lineno} imports {gone}, removed in Python 3.12/3.13"
