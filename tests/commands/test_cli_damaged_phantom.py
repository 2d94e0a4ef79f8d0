"""A damaged file in labkit's cached phantom data, met by `labkit train`: one line naming the
file and the exact command that rebuilds the set; that command works. Real files in a
private labkit cache, the real command line in subprocesses."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from labkit.data.locate import ensure_phantom
from labkit.runs import get_profile


def _labkit(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *argv], capture_output=True, text=True, env=env
    )


@pytest.mark.slow
def test_a_damaged_cached_phantom_names_the_file_and_the_command_that_rebuilds_it(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    root = ensure_phantom(get_profile("smoke").phantom_n, progress=False)  # as train makes it
    env = dict(os.environ, LABKIT_PROFILE="smoke", MPLBACKEND="Agg")
    train = ["train", "--model", "unet", "--data", "phantom", "--size", "32", "--epochs", "1"]
    train += ["--no-progress", "--out"]
    images = sorted((root / "Infection Segmentation Data").rglob("Train/COVID-19/images/*.png"))
    damaged = images[0]
    damaged.write_bytes(damaged.read_bytes()[:200])  # a copy cut short

    proc = _labkit(env, *train, str(tmp_path / "run1"))
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"labkit train: error: {damaged}: unreadable or truncated PNG"), line
    command = re.search(r"rebuild it with `([^`]+)`$", line)
    assert command, line
    assert command[1].startswith(f"labkit data phantom {shlex.quote(str(root))} --n 240 ")

    missing = images[1].parent.parent / "lung masks" / images[1].name  # a file gone
    missing.unlink()
    proc = _labkit(env, *train, str(tmp_path / "run2"))
    (line,) = proc.stderr.strip().splitlines()
    assert f"{images[1]}: image without lung mask" in line and command[0] in line, line

    rebuilt = _labkit(env, *shlex.split(command[1])[1:], "--quiet")  # the command, as given
    assert rebuilt.returncode == 0, rebuilt.stderr
    proc = _labkit(env, *train, str(tmp_path / "run3"))
    assert proc.returncode == 0, proc.stderr
