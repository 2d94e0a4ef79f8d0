"""A student's workspace: temporary folders, a stripped environment, worker processes.

``Workspace`` makes a student's temporary folders (a private copy of labkit, a home, a
working copy for the kernel), the stripped environment, and starts each worker in its own
session with a time limit, killing its process group (and the kernel's) afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from labkit.checks.registry import EXERCISE_MODULES_ENV_VAR
from labkit.grade.judge import LabSpec
from labkit.grade.submissions import Options
from labkit.grade.worker import BOOT, kill_group

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "CUDA_VISIBLE_DEVICES")
# Pretrained weights (lab 04) are shared, read-mostly downloads: a notebook finds the
# grader's copies instead of downloading them again into its own empty home.
_WEIGHT_CACHES = {
    "TORCH_HOME": Path.home() / ".cache" / "torch",
    "HF_HOME": Path.home() / ".cache" / "huggingface",
}
_PASSTHROUGH_ENV += ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "KAGGLEHUB_CACHE")


class Workspace:
    """A student's temporary folders and the worker processes started in them."""

    def __init__(self, root: Path, student: str, lab: LabSpec, options: Options) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=root))
        self.lib = self.dir / "lib"
        for rel, data in lab.snapshot.items():
            dest = self.lib / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        self.home = self.dir / "home"
        self.meta = self.dir / "meta"
        for d in (self.home / "tmp", self.meta, self.dir / "probe", self.dir / "work"):
            d.mkdir(parents=True)
        self.env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        threads = str(max(1, (os.cpu_count() or 1) // max(1, options.jobs)))
        self.env.update(
            HOME=str(self.home),
            USERPROFILE=str(self.home),
            TMPDIR=str(self.home / "tmp"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            MPLBACKEND="Agg",
            MPLCONFIGDIR=str(self.home / ".matplotlib"),
            IPYTHONDIR=str(self.home / ".ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            LABKIT_PROFILE=options.profile,
            LABKIT_CACHE=str(self.dir / "work" / ".labkit-cache"),
            OMP_NUM_THREADS=threads,
            MKL_NUM_THREADS=threads,
            PYTHONHASHSEED="0",
        )
        for name, default in _WEIGHT_CACHES.items():
            self.env[name] = os.environ.get(name, str(default))
        if os.environ.get(EXERCISE_MODULES_ENV_VAR):
            self.env[EXERCISE_MODULES_ENV_VAR] = os.environ[EXERCISE_MODULES_ENV_VAR]

    def run(self, mode: str, job: dict, timeout: float, options: Options) -> bool:
        """Start a worker and wait; False when it had to be killed for taking too long."""
        job = {**job, "max_file_bytes": options.max_file_bytes}
        job_path = self.meta / f"{mode}.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        log = open(self.meta / f"{mode}.log", "wb")  # noqa: SIM115 (closed below)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", BOOT, str(self.lib), mode, str(job_path)],
                cwd=job.get("cwd", self.dir),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            proc.wait(timeout=timeout)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
        self.kill(proc.pid)
        proc.wait()
        return finished

    def kill(self, pgid: int) -> None:
        if hasattr(os, "killpg"):
            kill_group(pgid)

    def log_tail(self, mode: str, chars: int = 600) -> str:
        try:
            with open(self.meta / f"{mode}.log", "rb") as f:
                f.seek(max(0, f.seek(0, 2) - chars))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def close(self) -> None:
        pgid = self.dir / "run" / "kernel.pgid"
        try:
            self.kill(int(pgid.read_text()))
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
