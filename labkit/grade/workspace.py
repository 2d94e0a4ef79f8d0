"""A student's workspace: temporary folders, a stripped environment, sandboxed workers.

``Workspace`` makes a student's temporary folders (read-only copies of labkit, a home, a
working copy for the kernel), the stripped environment, and starts each worker in the
sandbox (``labkit.grade.sandbox``) with resource limits and a time limit. A worker gets its
job on stdin and answers on stdout, on lines that start with a nonce it learns from the job;
the grader decides what happened from the exit code and its own timers, never from a file
the student's processes could have written.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from labkit.checks.registry import EXERCISE_MODULES_ENV_VAR
from labkit.grade.judge import LabSpec
from labkit.grade.sandbox import Limits, preexec, wrap
from labkit.grade.submissions import Options, read_regular_file

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "CUDA_VISIBLE_DEVICES")
# Pretrained weights (lab 04) are shared, read-mostly downloads: a notebook finds the
# grader's copies (read-only inside the sandbox) instead of downloading them again.
_WEIGHT_CACHES = {
    "TORCH_HOME": Path.home() / ".cache" / "torch",
    "HF_HOME": Path.home() / ".cache" / "huggingface",
}
_PASSTHROUGH_ENV += ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "KAGGLEHUB_CACHE")
MAX_ANSWER_BYTES = 2**20  # what the grader keeps of a worker's stdout


@dataclass
class Run:
    """What the grader saw of one worker: did it finish in time, its exit code, its answers."""

    finished: bool
    code: int | None
    lines: list[str] = field(default_factory=list)  # stdout lines after the nonce


class Workspace:
    """A student's temporary folders and the worker processes started in them."""

    def __init__(
        self, root: Path, student: str, lab: LabSpec, options: Options, sandbox: bool
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=root))
        self.meta = Path(tempfile.mkdtemp(prefix=f"{student}-logs-", dir=root))  # not visible
        self.sandbox = sandbox
        self.snapshot = lab.snapshot
        self.libs: list[Path] = []
        self.lib = self.exercise_lib("lib", {})
        self.home = self.dir / "home"
        for d in (self.home / "tmp", self.dir / "probe", self.dir / "work", self.dir / "run"):
            d.mkdir(parents=True)
        self.limits = Limits(
            memory_bytes=options.max_memory_bytes,
            file_bytes=options.max_file_bytes,
            cpu_seconds=int(options.timeout + options.exercise_timeout * 20 + 600),
        )
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
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.shared_ro: list[Path] = []
        for name, default in _WEIGHT_CACHES.items():
            self.env[name] = os.environ.get(name, str(default))
            self.shared_ro.append(Path(self.env[name]))
        if os.environ.get(EXERCISE_MODULES_ENV_VAR):
            self.env[EXERCISE_MODULES_ENV_VAR] = os.environ[EXERCISE_MODULES_ENV_VAR]

    def exercise_lib(self, name: str, overrides: dict[str, bytes]) -> Path:
        """A read-only copy of the snapshot with ``overrides`` (an absent reference) applied."""
        lib = self.dir / name
        for rel, data in {**self.snapshot, **overrides}.items():
            dest = lib / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        self.libs.append(lib)
        return lib

    def run(
        self,
        name: str,
        argv: list[str],
        job: dict,
        timeout: float,
        cwd: Path,
        boot_timeout: float | None = None,
        ro: tuple[Path, ...] = (),
    ) -> Run:
        """Start a worker (``python -I *argv``), send ``job`` on stdin, wait, collect its answers.

        Args:
            timeout: seconds allowed; with ``boot_timeout``, counted from the worker's
                ``<nonce> ready`` line (printed before any student code runs), which must come
                within ``boot_timeout`` seconds.
            ro: more folders it may read (a real dataset).
        """
        nonce = secrets.token_hex(16)
        command = [sys.executable, "-I", *argv]
        if self.sandbox:
            ro_paths = (*self.libs, *self.shared_ro, *ro)
            command = wrap(command, rw=(self.dir,), ro=ro_paths, cwd=cwd)
        log = open(self.meta / f"{name}.log", "wb")  # noqa: SIM115 (closed below)
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=preexec(self.limits),  # noqa: PLW1509 (only setrlimit calls)
            )
        finally:
            log.close()
        answers = _Answers(proc, nonce)
        try:
            proc.stdin.write((json.dumps({**job, "nonce": nonce}) + "\n").encode("utf-8"))
            proc.stdin.close()
        except OSError:
            pass  # it died at once: its exit code says so
        finished = answers.wait(timeout, boot_timeout)
        _kill_group(proc.pid)
        code = proc.wait()
        answers.thread.join(timeout=5)
        return Run(finished, code if finished else None, answers.lines)

    def log_tail(self, name: str, chars: int = 600) -> str:
        try:
            with open(self.meta / f"{name}.log", "rb") as f:
                f.seek(max(0, f.seek(0, 2) - chars))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def close(self) -> None:
        if not self.sandbox:  # in the sandbox, its PID namespace ended with the worker
            _kill_kernel(self.dir / "run" / "kernel.pgid")
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.meta, ignore_errors=True)


class _Answers:
    """Reads a worker's stdout on a thread: lines after the nonce, capped; notes ``ready``."""

    def __init__(self, proc: subprocess.Popen, nonce: str) -> None:
        self.proc, self.prefix = proc, f"{nonce} "
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kept = 0
        for raw in iter(lambda: self.proc.stdout.readline(MAX_ANSWER_BYTES), b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith(self.prefix):
                continue
            text = line[len(self.prefix) :]
            if text == "ready":
                self.ready.set()
            elif kept + len(text) <= MAX_ANSWER_BYTES:
                self.lines.append(text)
                kept += len(text)
        self.proc.stdout.close()

    def wait(self, timeout: float, boot_timeout: float | None) -> bool:
        """True when the worker ended within its time (after booting within its own)."""
        start = time.monotonic()
        if boot_timeout is not None:
            while not self.ready.wait(0.05):
                if self.proc.poll() is not None:
                    return True
                if time.monotonic() - start > boot_timeout:
                    return False
            start = time.monotonic()
        try:
            self.proc.wait(timeout=max(0.0, timeout - (time.monotonic() - start)))
            return True
        except subprocess.TimeoutExpired:
            return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_kernel(pgid_file: Path) -> None:
    """Outside the sandbox: kill the kernel's group, unless the (student-writable) file names
    a group that is not a kernel's: this process's own, or one in this session."""
    data, _ = read_regular_file(pgid_file, 64)
    try:
        pgid = int(data or b"")
        if pgid > 1 and pgid != os.getpgrp() and os.getsid(pgid) != os.getsid(0):
            _kill_group(pgid)
    except (OSError, ValueError):
        pass
