"""A student's workspace: the prepared labkit copies, and each worker in a world of its own.

``Workspace`` holds a student's read-only copies of labkit (written by the grader into a
folder of its own before any of the student's code runs) and starts each worker process
(``Workspace.run``) in a *fresh* sandbox (``labkit.grade.sandbox``): exactly one labkit copy,
the read-only data it needs, and private writable folders that are sized tmpfs mounts,
gone when it ends. A worker gets its job on stdin and answers on stdout; the grader decides
what happened from the exit code, its own timers and those answers, and never opens, writes
or deletes anything inside a folder the student's code could write.

Without the sandbox (the weaker fallback) the same worlds are folders on disk, each made
fresh for one worker and removed after it by ``remove_tree`` (never through a link, whatever
modes or names the student's code left).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from labkit.checks.registry import EXERCISE_MODULES_ENV_VAR
from labkit.grade.cgroup import GATE, GO, Cgroup
from labkit.grade.judge import LabSpec
from labkit.grade.sandbox import INSIDE, Limits, View, preexec, wrap
from labkit.grade.submissions import Options

_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
# Pretrained weights (lab 04) are shared, read-mostly downloads: a notebook finds the
# grader's copies (read-only inside the sandbox) instead of downloading them again.
_WEIGHT_CACHES = {
    "TORCH_HOME": Path.home() / ".cache" / "torch",
    "HF_HOME": Path.home() / ".cache" / "huggingface",
}
_PASSTHROUGH_ENV += ("HF_HUB_OFFLINE",)
MAX_ANSWER_BYTES = 2**20  # what the grader keeps of a worker's stdout, by default


@dataclass
class Run:
    """What the grader saw of one worker: did it finish in time, its exit code, its answers."""

    finished: bool
    code: int | None
    lines: list[str] = field(default_factory=list)  # stdout lines after the nonce
    stderr: str = ""  # the tail of what it printed on stderr (for the instructor's log only)


@dataclass
class World:
    """Where one worker's folders are, as the worker sees them (``paths``), and how to make them.

    ``paths["work"]`` is its private writable folder (also its home and working folder);
    every name given to ``Workspace.world`` as ``ro`` maps to where that folder appears.
    """

    paths: dict[str, str]
    view: View | None  # in the sandbox
    host: Path | None = None  # without it: the world's own folder, removed after the run


class Workspace:
    """A student's prepared copies of labkit and the worker processes started for them."""

    def __init__(
        self, root: Path, student: str, lab: LabSpec, options: Options, sandbox: bool
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=root))  # the grader's only
        self.log = ""  # what the workers printed on stderr: OUT/logs/<student>.txt
        self.sandbox = sandbox
        self.snapshot = lab.snapshot
        self.hidden = frozenset(rel.split("/")[0].removesuffix(".py") for rel in lab.snapshot)
        self.limits = Limits(
            memory_bytes=options.max_memory_bytes,
            file_bytes=options.max_file_bytes,
            disk_bytes=options.max_disk_bytes,
            tmp_bytes=options.max_tmp_bytes,
            shm_bytes=options.max_tmp_bytes,
            ram_bytes=options.max_ram_bytes,
            cpu_seconds=int((options.timeout or 3600) + options.exercise_timeout * 20 + 600),
        )
        self.cpus = max(1, (os.cpu_count() or 1) // max(1, options.jobs))  # its share
        threads = str(self.cpus)
        self.env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        self.env.update(
            MPLBACKEND="Agg",
            JUPYTER_PLATFORM_DIRS="1",
            LABKIT_PROFILE=options.profile,
            OMP_NUM_THREADS=threads,
            MKL_NUM_THREADS=threads,
            PYTHONHASHSEED="0",
            PYTHONDONTWRITEBYTECODE="1",
            HF_HUB_OFFLINE="1",
        )
        if os.environ.get(EXERCISE_MODULES_ENV_VAR):
            self.env[EXERCISE_MODULES_ENV_VAR] = os.environ[EXERCISE_MODULES_ENV_VAR]
        self.caches = {
            f"cache/{name.lower()}": Path(os.environ.get(name, str(default)))
            for name, default in _WEIGHT_CACHES.items()
        }

    def copy_of_labkit(self, name: str, overrides: dict[str, bytes]) -> Path:
        """A fresh copy of the snapshot with ``overrides`` (an absent reference) applied."""
        lib = self.dir / name
        for rel, data in {**self.snapshot, **overrides}.items():
            dest = lib / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        return lib

    def world(self, lib: Path, ro: dict[str, Path] | None = None) -> World:
        """A fresh world for one worker: ``lib`` as ``paths["lib"]``, ``ro`` read-only.

        Args:
            ro: name -> host folder. A name under ``work/`` appears inside the private
                folder (read-only in the sandbox, a copy without it).
        """
        ro = {"lib": lib, **{k: v for k, v in self.caches.items() if v.is_dir()}, **(ro or {})}
        if self.sandbox:
            paths = {"work": f"{INSIDE}/work", **{k: f"{INSIDE}/{k}" for k in ro}}
            view = View(
                ro=tuple((paths[k], v) for k, v in ro.items()),
                tmpfs=((paths["work"], self.limits.disk_bytes),),
                hidden=self.hidden,
            )
            return World(paths, view)
        host = Path(tempfile.mkdtemp(prefix="world-", dir=self.dir))
        (host / "work").mkdir()
        paths = {"work": str(host / "work")}
        for name, folder in ro.items():
            if name.startswith("work/"):
                shutil.copytree(folder, host / name)  # before any student code runs here
                paths[name] = str(host / name)
            else:
                paths[name] = str(folder)
        return World(paths, None, host)

    def world_env(self, world: World) -> dict[str, str]:
        """The environment of a worker in ``world``: a home, caches and temp inside its folder."""
        work = world.paths["work"]
        env = dict(self.env)
        env.update(
            HOME=work,
            USERPROFILE=work,
            TMPDIR="/tmp" if world.view is not None else work,
            XDG_CACHE_HOME=f"{work}/.cache",
            MPLCONFIGDIR=f"{work}/.matplotlib",
            IPYTHONDIR=f"{work}/.ipython",
            LABKIT_CACHE=f"{work}/.labkit-cache",
        )
        for name in _WEIGHT_CACHES:
            key = f"cache/{name.lower()}"
            if key in world.paths:
                env[name] = world.paths[key]
        return env

    def run(
        self,
        world: World,
        argv: list[str],
        job: dict,
        timeout: float,
        boot_timeout: float | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> Run:
        """Start a worker (``python -I *argv``) in ``world``, send ``job`` on stdin, wait.

        Args:
            timeout: seconds allowed; with ``boot_timeout``, counted from the worker's
                ``<nonce> ready`` line (printed before any student code runs), which must come
                within ``boot_timeout`` seconds.
            max_answer_bytes: the most the grader reads of the worker's stdout.
        """
        nonce = secrets.token_hex(16)
        command = [sys.executable, "-I", *argv]
        cwd = world.paths["work"]
        if world.view is not None:
            command = wrap(command, world.view, self.limits, cwd=cwd)
        cgroup = Cgroup.make(self.limits.ram_bytes, self.limits.tasks, self.cpus)
        if cgroup is not None:  # it waits for its go until it is in its cgroup
            command = [*GATE, *command]
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd if world.view is None else None,
                env=self.world_env(world),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=preexec(self.limits),  # noqa: PLW1509 (only setrlimit calls)
            )
            if cgroup is not None:
                try:
                    cgroup.join(proc.pid)
                    proc.stdin.write(GO)
                except OSError:
                    _kill_group(proc.pid)  # not in its cgroup: it must not run
            answers = _Answers(proc, nonce, max_answer_bytes)
            try:
                proc.stdin.write((json.dumps({**job, "nonce": nonce}) + "\n").encode("utf-8"))
                proc.stdin.close()
            except OSError:
                pass  # it died at once: its exit code says so
            finished = answers.wait(timeout, boot_timeout)
            _kill_group(proc.pid)
            code = proc.wait()
            answers.join()
            if world.view is None and answers.kernel:
                _kill_kernel(answers.kernel)
            return Run(finished, code if finished else None, answers.lines, answers.stderr_tail())
        finally:
            if cgroup is not None:
                cgroup.close()
            if world.host is not None:
                remove_tree(world.host)

    def close(self) -> None:
        remove_tree(self.dir)


class _Answers:
    """Reads a worker's stdout on a thread (lines after the nonce, capped; ``ready`` and the
    kernel's process group noted) and keeps the tail of its stderr for the instructor."""

    def __init__(self, proc: subprocess.Popen, nonce: str, limit: int) -> None:
        self.proc, self.prefix, self.limit = proc, f"{nonce} ", limit
        self.lines: list[str] = []
        self.kernel = 0
        self.err = b""
        self.ready = threading.Event()
        self.threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _read(self) -> None:
        kept = 0
        for raw in iter(lambda: self.proc.stdout.readline(self.limit + 1), b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith(self.prefix):
                continue
            text = line[len(self.prefix) :]
            if text == "ready":
                self.ready.set()
            elif text.startswith("kernel ") and text[7:].isdigit():
                self.kernel = int(text[7:])
            elif kept + len(text) <= self.limit:
                self.lines.append(text)
                kept += len(text)
        self.proc.stdout.close()

    def _read_err(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read(65536), b""):
            self.err = (self.err + chunk)[-4096:]
        self.proc.stderr.close()

    def stderr_tail(self) -> str:
        return self.err.decode("utf-8", "replace")

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

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=5)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_kernel(pgid: int) -> None:
    """Without the sandbox: kill the kernel's group (as its worker reported it), unless that
    names this process's own group or session."""
    try:
        if pgid > 1 and pgid != os.getpgrp() and os.getsid(pgid) != os.getsid(0):
            _kill_group(pgid)
    except OSError:
        pass


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything in it, however student code left it.

    Never follows a link (``os.fwalk`` and ``shutil.rmtree`` work on folder descriptors),
    opens no file (a FIFO cannot block it), gives every folder back its owner's rights first
    (one left ``chmod 000`` is still emptied), and takes any name.
    """
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    os.chmod(path, stat.S_IRWXU)
    for _, dirs, _, dir_fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) != stat.S_IRWXU:
                    os.chmod(name, stat.S_IRWXU, dir_fd=dir_fd)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
