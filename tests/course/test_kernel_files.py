"""Runs that start Jupyter kernels leave no kernel connection files behind: not after labs
that fail (an error, a dead kernel, a time-out), not after a closed terminal (SIGHUP), and
a run killed outright has its folder removed by the next run. Real `labkit course run`
processes with their own temporary and Jupyter runtime folders, so whatever they leave is
seen (the grader's side: tests/grade/test_grade_field.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.course.kernel import KERNEL_FILES_PREFIX

LAB = """\
# %% [markdown]
# # Lab {lab}: {title}

# %% tags=["parameters"]
PROFILE = None
DATA = None

# %%
{code}
"""

FAILING = {
    "90_error": "raise ValueError('planned failure')",
    "91_dies": "import os\nos.kill(os.getpid(), 9)",
    "92_slow": "import time\ntime.sleep(600)",
}


def _course(tmp_path: Path, labs: list[str], timeout: int) -> tuple[list[str], dict]:
    src = tmp_path / "labs"
    src.mkdir(exist_ok=True)
    for stem in labs:
        code = FAILING[stem]
        (src / f"{stem}.py").write_text(LAB.format(lab=stem[:2], title=stem[3:], code=code))
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "rt").mkdir()
    command = [sys.executable, "-m", "labkit", "course", "run", "--source", str(src)]
    command += ["--out", str(tmp_path / "out"), "--timeout", str(timeout), "--no-progress"]
    return command, env


def _left(tmp_path: Path) -> list[Path]:
    """Connection files (any .json) and kernel folders left in its temporary/runtime folders."""
    found = [p for d in ("tmp", "rt") for p in (tmp_path / d).rglob("*") if p.suffix == ".json"]
    return found + list((tmp_path / "tmp").glob(f"{KERNEL_FILES_PREFIX}*"))


def _kernels_of(tmp_path: Path) -> list[str]:
    """Kernel processes still running with a connection file under ``tmp_path``."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ipykernel" in text and str(tmp_path) in text:
            alive.append(text)
    return alive


@pytest.mark.slow
def test_failing_labs_leave_no_kernel_files(tmp_path):
    command, env = _course(tmp_path, list(FAILING), timeout=15)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a run killed outright left its folder: the next run removes it
    stale = tmp_path / "tmp" / f"{KERNEL_FILES_PREFIX}{dead.pid}-x"
    stale.mkdir(parents=True)
    (stale / "kernel-stale.json").write_text("{}")
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "0 of 3 lab(s) ran" in proc.stdout
    assert "DeadKernelError" in proc.stdout and "was still running" in proc.stdout
    assert _left(tmp_path) == []
    assert _kernels_of(tmp_path) == []


@pytest.mark.slow
def test_a_closed_terminal_stops_the_run_and_removes_its_kernel_files(tmp_path):
    command, env = _course(tmp_path, ["92_slow"], timeout=300)
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "tmp").rglob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.5)  # until the kernel's connection file exists
        assert list((tmp_path / "tmp").rglob("*.json")), "no kernel started"
        time.sleep(3)  # the cell is running
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert _left(tmp_path) == []
    assert _kernels_of(tmp_path) == []
    assert proc.returncode == 130, out + err  # stopped as by Ctrl-C, saying so
    assert err.strip().splitlines()[-1] == "interrupted"
