"""OS isolation for every process that runs student code: bubblewrap, resource limits.

``bwrap`` (bubblewrap; Debian/Ubuntu package ``bubblewrap``) starts a process in new
namespaces: here no network (``--unshare-all``), its own PID namespace (nothing outlives it:
when it ends, the kernel kills every process left inside, detached or not), an unprivileged
uid with no capabilities, ``--die-with-parent``, and a filesystem that holds only the
system's programs and libraries, this Python and its packages (read-only), a snapshot of
labkit (read-only) and the student's own working folder. The submissions, the output
folder, other students' folders, the instructor's home, ``solutions/`` and ``--hidden``
folders are simply not there.

Where bwrap is missing or cannot start (macOS, a kernel without user namespaces), workers
run as before (own session, stripped environment, private copy of labkit) and the grader
says so loudly; ``--require-sandbox`` refuses instead.

Resource limits apply either way (set in the child before ``exec``, inherited by everything
it starts): address space, processes, file size, open files, CPU seconds, no core dumps.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# What a worker may see of the system besides Python: programs, libraries, the loader's
# configuration. Not /etc as a whole (it may hold secrets), not /home, /root, /tmp, /work.
_SYSTEM_RO = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_RO = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/fonts",
    "/etc/ssl/certs",
)
NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits for a student's workers (and the kernel they start)."""

    memory_bytes: int = 8 * 2**30  # address space (RLIMIT_AS)
    processes: int = 256  # new processes beyond those this user already runs (RLIMIT_NPROC)
    file_bytes: int = 2**30  # largest file written (RLIMIT_FSIZE)
    open_files: int = 1024  # RLIMIT_NOFILE
    cpu_seconds: int = 3600  # RLIMIT_CPU, per process

    def settings(self) -> list[tuple[int, int]]:
        """``(resource, value)`` pairs, computed in the parent (the child only sets them)."""
        import resource

        pairs = []
        for what, value in (
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_NPROC, _processes_of_this_user() + self.processes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_CPU, self.cpu_seconds),
        ):
            hard = resource.getrlimit(what)[1]
            pairs.append((what, value if hard == resource.RLIM_INFINITY else min(value, hard)))
        return pairs


def _processes_of_this_user() -> int:
    """RLIMIT_NPROC counts every process of the real uid, so the limit starts from that."""
    uid, count = os.getuid(), 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    count += entry.stat().st_uid == uid
                except OSError:
                    pass
    except OSError:
        return 4096
    return count


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def sandbox_problem() -> str:
    """``""`` when bubblewrap can start a sandboxed Python here, else why not (cached)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    argv = wrap([sys.executable, "-I", "-c", "import os; print(os.getuid())"], rw=(), ro=())
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start: {err}"
    if done.returncode != 0 or done.stdout.strip() != str(NOBODY).encode():
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap could not start a sandbox here ({why[-1] if why else done.returncode})"
    return ""


def _python_roots() -> list[str]:
    """Folders this Python and its packages live in (the venv and the base installation)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    return sorted(r for r in roots if r and Path(r).is_dir() and r != "/")


def wrap(
    argv: list[str],
    rw: tuple[Path, ...] | list[Path],
    ro: tuple[Path, ...] | list[Path],
    cwd: Path | None = None,
) -> list[str]:
    """``argv`` run inside bubblewrap: read-only system and Python, ``ro`` and ``rw`` folders.

    Args:
        argv: the command.
        rw: folders the process may write (bound at the same path).
        ro: folders or files it may read (bound read-only at the same path, after ``rw``, so
            a read-only folder inside a writable one stays read-only).
        cwd: its working folder.
    """
    cmd = [bwrap_path() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    cmd += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    for path in _SYSTEM_RO + _ETC_RO:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for root in _python_roots():
        cmd += ["--ro-bind", root, root]
    for path in rw:
        cmd += ["--bind", str(path), str(path)]
    for path in ro:
        cmd += ["--ro-bind-try", str(path), str(path)]
    if cwd is not None:
        cmd += ["--chdir", str(cwd)]
    return [*cmd, "--", *argv]


def preexec(limits: Limits | None) -> Callable[[], None] | None:
    """What ``subprocess.Popen`` runs in the child before ``exec``: set the resource limits.

    The values are computed here, in the parent: the child of a threaded parent should do
    no more than system calls between fork and exec.
    """
    if limits is None or not hasattr(os, "fork"):
        return None
    import resource

    pairs = limits.settings()

    def apply() -> None:
        for what, value in pairs:
            resource.setrlimit(what, (value, value))

    return apply
