"""`make colab-check`: install labkit the way a student notebook does on Colab, then run the labs.

Run with the Python of a venv that holds Colab's recorded versions (the Makefile builds it
from constraints/colab-*.txt and calls `python .ci/colab_check.py --snapshot` once, which
records that venv's untouched state). Each check then:

1. puts the venv back to its recorded state (removes what an earlier check installed);
2. builds a labkit wheel of this checkout and copies the student notebooks beside it;
3. runs the first student notebook's install cell, as written, with COLAB_RELEASE_TAG set
   (the cell finds the uploaded wheel: the "no public repository" route);
4. fails if any version recorded in the constraints file changed, or the cell failed;
5. runs `labkit info`, the viewer/progress-bar tests (tests/test_widgets.py,
   tests/test_progress.py) and every
   student notebook under nbval (smoke profile, phantom data, COLAB_RELEASE_TAG set, so each
   notebook's install cell runs again and must find everything in place).

6. runs the install cell's default route, `labkit @ git+REPOSITORY@BRANCH`, against a local
   git repository holding this checkout (`git+file://...`, standing in for the published
   one), and again fails if any distribution changed.

The venv runs on Colab's Python minor version (`# python: X.Y` in the constraints file)
when this machine has one (`--find-python` picks it: PATH, then pyenv); otherwise on
python3, with a loud warning. What it cannot show: Colab's own front end (which renders
ipywidgets 7 in the browser), its GPUs, and GitHub's side of the git route.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = Path(sys.prefix) / "colab-baseline.json"


def installed() -> dict[str, str]:
    """{normalised name: version} of every distribution in this venv."""
    return {
        d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()
    }


def recorded(constraints: Path) -> dict[str, str]:
    """{name: version} pinned in the constraints file."""
    pins = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            if not version:
                sys.exit(f"{constraints}: expected NAME==VERSION lines, got {line!r}")
            pins[name.strip().lower()] = version.strip()
    return pins


def colab_python(constraints: Path) -> str:
    """The interpreter for the venv: Colab's minor version (``# python: X.Y`` in the
    constraints file) from PATH or pyenv; else ``python3``, with a loud warning on stderr."""
    wanted = colab_python_version(constraints)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{wanted}")]
    candidates += sorted(map(str, pyenv_root.glob(f"versions/{wanted}.*/bin/python{wanted}")))
    found = next((c for c in candidates if c and _runs_as(c, wanted)), None)  # not a dead shim
    if found is None:
        fallback = shutil.which("python3") or sys.executable
        print(
            f"\n*** colab-check WARNING: no Python {wanted} (Colab's) on this machine (PATH, "
            f"pyenv); the Colab venv falls back to {fallback}. Install Python {wanted} to "
            "check what students run. ***\n",
            file=sys.stderr,
        )
        return fallback
    return found


def _runs_as(python: str, minor: str) -> bool:
    """Does ``python`` start, and is it Python ``minor``? (pyenv shims may not start.)"""
    probe = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True,
    )  # fmt: skip
    return probe.returncode == 0 and probe.stdout.strip() == minor


def git_checkout_repo(work: Path) -> Path:
    """A git repository in ``work`` holding this checkout as it is (tracked and new files,
    not ignored ones), one commit on the branch the install cell asks for."""
    repo = work / "published"
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git = ["git", "-C", str(repo), "-c", "user.name=colab-check", "-c", "user.email=cc@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "this checkout"], check=True)
    return repo


def unchanged(before: dict[str, str], what: str) -> None:
    """Exit with the list when any distribution of ``before`` changed version or vanished."""
    after = installed()
    changed = [f"{n} {v} -> {after.get(n, 'removed')}" for n, v in sorted(before.items())
               if after.get(n) != v]  # fmt: skip
    if changed:
        sys.exit(f"colab-check FAILED: {what} changed {', '.join(changed)}")
    added = sorted(f"{n} {after[n]}" for n in set(after) - set(before))
    print(f"{what}: all {len(before)} distributions unchanged; added: {', '.join(added)}")


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def step(text: str) -> None:
    print(f"\ncolab-check: {text}", flush=True)


def restore_baseline() -> None:
    """Uninstall what an earlier check added; put back versions it changed."""
    if not BASELINE.is_file():
        sys.exit(f"{BASELINE} missing: rebuild the venv (make colab-check does it)")
    base = json.loads(BASELINE.read_text(encoding="utf-8"))
    now = installed()
    extra = sorted(set(now) - set(base))
    changed = sorted(f"{n}=={v}" for n, v in base.items() if now.get(n) != v)
    if extra:
        pip("uninstall", "-q", "-y", *extra)
    if changed:
        pip("install", "-q", "--no-deps", *changed)
    print(f"venv back to its recorded state ({len(extra)} removed, {len(changed)} restored)")


def colab_python_version(constraints: Path) -> str:
    """Colab's Python minor version, from the constraints file's ``# python: X.Y`` line."""
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if line.replace(" ", "").startswith("#python:"):
            return line.split(":", 1)[1].strip()
    sys.exit(f"{constraints}: no '# python: X.Y' line (Colab's Python)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constraints", type=Path, required=True)
    parser.add_argument(
        "--find-python", action="store_true", help="print the interpreter for the Colab venv"
    )
    parser.add_argument("--snapshot", action="store_true", help="record this venv's state")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers for the notebooks")
    args = parser.parse_args()
    if args.find_python:
        print(colab_python(args.constraints))
        return 0
    if args.snapshot:
        BASELINE.write_text(json.dumps(installed(), indent=1, sort_keys=True), encoding="utf-8")
        print(f"recorded {len(installed())} distributions in {BASELINE}")
        return 0
    start = time.monotonic()
    pins = recorded(args.constraints)
    colab_minor = colab_python_version(args.constraints)
    here = ".".join(platform.python_version().split(".")[:2])
    print(
        f"colab-check: Colab's versions from {args.constraints.name}; this runs on Python "
        f"{platform.python_version()} (Colab: {colab_minor}), CPU only, torch from PyPI"
    )
    if here != colab_minor:
        print(f"*** colab-check WARNING: Python {here} here, not Colab's {colab_minor} ***")
    restore_baseline()
    before = installed()
    wrong = [f"{n} {before.get(n, 'missing')} (recorded {v})" for n, v in pins.items()
             if before.get(n, "").split("+")[0] != v]  # fmt: skip
    if wrong:
        sys.exit(f"colab-check: the venv does not hold the recorded versions: {', '.join(wrong)}")

    work = Path(tempfile.mkdtemp(prefix="labkit-colab-check-"))
    try:
        step("building a labkit wheel of this checkout (the 'upload a wheel' route)")
        pip("wheel", "-q", "--no-deps", "-w", str(work / "wheel"), str(ROOT))
        lab_dir = work / "notebooks"
        shutil.copytree(ROOT / "notebooks", lab_dir, ignore=shutil.ignore_patterns("*.py"))
        shutil.copy(ROOT / "conftest.py", work / "conftest.py")  # nbval's output timeout
        for wheel in (work / "wheel").glob("labkit-*.whl"):
            shutil.copy(wheel, lab_dir)
        notebooks = sorted(lab_dir.glob("[0-9][0-9]_*.ipynb"))
        first = json.loads(notebooks[0].read_text(encoding="utf-8"))
        cell = next(c for c in first["cells"] if c["cell_type"] == "code")
        source = "".join(cell["source"])

        env = dict(os.environ, COLAB_RELEASE_TAG="colab-check")
        for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "LABKIT_DATA"):
            env.pop(var, None)  # as a student without Kaggle credentials: phantom data
        env["KAGGLE_CONFIG_DIR"] = str(work / "no-kaggle")
        env["KAGGLEHUB_CACHE"] = str(work / "kagglehub")
        step(f"running the install cell of {notebooks[0].name} with COLAB_RELEASE_TAG set")
        subprocess.run([sys.executable, "-c", source], cwd=lab_dir, env=env, check=True)

        unchanged(before, "installing labkit (uploaded wheel)")
        after = installed()

        step("labkit info")
        labkit = Path(sys.executable).with_name("labkit")
        subprocess.run([str(labkit), "info"], env=env, check=True)

        step("viewer and progress bars under ipywidgets " + after["ipywidgets"])
        test_env = dict(env, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(ROOT / "tests" / "test_widgets.py"), str(ROOT / "tests" / "test_progress.py")],
            cwd=ROOT, env=test_env, check=True,
        )  # fmt: skip

        step(f"{len(notebooks)} student notebooks under nbval (smoke, phantom data)")
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", args.workers,
             "--dist", "loadfile", "--nbval-lax", "--nbval-current-env", "--rootdir", str(work),
             *map(str, notebooks)],
            cwd=work, env=dict(test_env, LABKIT_PROFILE="smoke"), check=True,
        )  # fmt: skip

        step("the install cell's git route, against a local repository of this checkout")
        restore_baseline()
        published = git_checkout_repo(work)
        url = re.search(r"labkit @ git\+(\S+?)@([\w./-]+)\"", source)
        if url is None:
            sys.exit("colab-check FAILED: the install cell has no 'labkit @ git+URL@BRANCH' route")
        local = source.replace(url[0], f'labkit @ git+file://{published}@{url[2]}"')
        print(f"{url[1]}@{url[2]} -> file://{published}@{url[2]}")
        git_dir = work / "no-wheel"  # no labkit-*.whl beside it: the cell takes the git route
        git_dir.mkdir()
        subprocess.run([sys.executable, "-c", local], cwd=git_dir, env=env, check=True)
        unchanged(before, "installing labkit (git route)")
        subprocess.run([str(labkit), "--version"], env=env, check=True)
    except subprocess.CalledProcessError as err:
        print(f"colab-check FAILED: {' '.join(map(str, err.cmd))[:300]} exited {err.returncode}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ncolab-check: passed in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
