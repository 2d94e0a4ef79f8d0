"""The reference stays out of the sandbox however labkit is installed, and whoever grades.

A real non-editable install (``pip install --no-deps --no-build-isolation`` of this source
into a fresh venv whose other packages come from this one through a ``.pth`` file) puts
labkit's sources in site-packages, which the sandbox binds: the walker notebook of
test_grade_trust (every file its exercise process can open, every labkit it can import)
must still find only its own prepared copy. The same run is then repeated by an
unprivileged user (uid 65534), as an instructor's grading account would run it (CI is root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from _attacks import WALK, fingerprints
from _grading import FIXTURES, REPO, demo_notebooks, edited, rows, write

from labkit.grade.sandbox import sandbox_problem

pytestmark = pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox: {sandbox_problem()}")


@pytest.fixture(scope="module")
def installed(demo_env):
    """A world-readable folder with a non-editable labkit venv, the demo lab and submissions."""
    base = Path(tempfile.mkdtemp(prefix="labkit-installs-"))
    try:
        src = base / "src"
        shutil.copytree(
            REPO / "labkit", src / "labkit", ignore=shutil.ignore_patterns("__pycache__")
        )
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, src / name)
        venv = base / "venv"
        # The venv's interpreter must be one any user can run and bind (not one under /root):
        # the system's Python of the same minor version, with this venv's packages.
        subprocess.run([_readable_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python"
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        Path(site, "labkit_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        subprocess.run([*pip, "--no-index", str(src)], check=True, cwd=base, timeout=600)
        where = subprocess.run(
            [python, "-c", "import labkit; print(labkit.__file__)"],
            capture_output=True, text=True, cwd=base, check=True,
        ).stdout.strip()  # fmt: skip
        assert where.startswith(site), where  # really the non-editable copy
        for name in ("labs", "grade"):
            shutil.copytree(FIXTURES / name, base / "fixtures" / name)
        shutil.copy(FIXTURES / "demo_exercises.py", base / "fixtures" / "demo_exercises.py")
        _, solution = demo_notebooks(base / "build")
        sizes, digests, texts = fingerprints()
        walk = WALK.format(sizes=sizes, digests=digests, texts=texts)
        write(base / "subs", "walker.ipynb", edited(solution, {"00.dice": walk}))
        write(base / "subs", "honest.ipynb", solution)
        os.chmod(base, 0o755)
        subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
        yield base, python
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _readable_python() -> str:
    """A Python of this minor version that every user can read, else this one."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        real = os.path.realpath(candidate)
        if os.path.exists(real) and all(
            os.stat(p).st_mode & 0o005 == 0o005 for p in Path(real).parents if str(p) != "/"
        ):
            return candidate
    return sys.executable


def _grade(
    base: Path, python: Path, out: str, user: list[str]
) -> tuple[subprocess.CompletedProcess, dict]:
    (base / out).mkdir(mode=0o777)
    os.chmod(base / out, 0o777)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base / out),
        "PYTHONPATH": str(base / "fixtures"),
        "LABKIT_EXERCISE_MODULES": "demo_exercises",
    }
    command = [*user, str(python), "-m", "labkit.cli", "grade", str(base / "subs"), "--lab", "00"]
    command += ["--out", str(base / out / "grades"), "--source", str(base / "fixtures" / "labs")]
    command += ["--hidden", str(base / "fixtures" / "grade" / "hidden"), "--no-run"]
    command += ["--test-timeout", "300", "--no-progress", "--require-sandbox", "--jobs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=base, timeout=1500)
    table = (
        rows(base / out / "grades") if (base / out / "grades" / "gradebook.csv").exists() else {}
    )
    return done, table


def _walk_message(base: Path, out: str) -> str:
    return (base / out / "grades" / "feedback" / "walker.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("who", ["root", "unprivileged"])
def test_a_non_editable_install_is_not_visible_to_the_exercise_process(installed, who):
    base, python = installed
    if who == "root" and os.getuid() != 0:
        pytest.skip("the grader already runs unprivileged here")
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if who != "root" else []
    if user and (os.getuid() != 0 or shutil.which("setpriv") is None):
        pytest.skip("needs root and setpriv to become another user")
    done, table = _grade(base, python, f"out-{who}", user)
    assert done.returncode == 0, done.stderr[-3000:]
    assert table["honest"]["score"] == "4", table
    feedback = _walk_message(base, f"out-{who}")
    assert "WALK files=" in feedback, feedback
    assert "found=\\[\\]" in feedback, feedback  # (Markdown-escaped brackets)
    assert "packages=\\['/sandbox/lib/labkit/\\_\\_init\\_\\_.py'\\]" in feedback, feedback
    assert "elsewhere=none" in feedback, feedback
