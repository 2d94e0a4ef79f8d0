"""A memory and process limit for one sandbox, where the grader may make cgroups.

Resource limits (``RLIMIT_*``) are per process and leave two gaps: memory that is not a
file or a mapping of the process (``memfd_create``, SysV shared memory) and, for a grader
running as root, the number of processes (the kernel exempts uid 0, which the sandbox's
uid maps to). A cgroup closes both: ``memory`` counts every page the sandbox's processes
charge, ``pids`` every task; ``cpu`` (where mounted) gives it at most its share of the
cores, so that with ``--jobs N`` one submission cannot starve its neighbours. Made only where this process can (root, with the ``memory``
and ``pids`` controllers of cgroup v1 or v2 mounted writable); elsewhere ``Cgroup.make``
returns None and the rlimits stand alone (ARCHITECTURE.md, Trust).

A worker joins its cgroup before it runs anything: it starts as a shell (``GATE``) that
waits for a line on its stdin, which the grader sends once it has written the pid into the
cgroup; then the shell becomes the worker.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "labkit-grade"


# The worker's first process: it reads one line (the grader's go, sent once the worker is in
# its cgroup) from stdin, then becomes the command; the job follows on the same stdin. (sh
# reads a pipe byte by byte, so the job's line stays for the command.)
GATE = ["/bin/sh", "-c", 'read _; exec "$@"', "labkit-gate"]
GO = b"go\n"


def _v2() -> Path | None:
    controllers = ROOT / "cgroup.controllers"
    try:
        if {"memory", "pids"} <= set(controllers.read_text().split()):
            return ROOT
    except OSError:
        pass
    return None


def _v1() -> dict[str, Path] | None:
    dirs = {name: ROOT / name for name in ("memory", "pids")}
    if all((d / "cgroup.procs").is_file() for d in dirs.values()):
        return dirs
    return None


class Cgroup:
    """One sandbox's cgroup(s): ``procs`` are the files a pid is written to, to join."""

    def __init__(self, dirs: list[Path], procs: list[Path]) -> None:
        self.dirs, self.procs = dirs, procs

    @classmethod
    def make(cls, memory_bytes: int, pids: int, cpus: float | None = None) -> Cgroup | None:
        """A new cgroup limited to ``memory_bytes``, ``pids`` tasks and (where the ``cpu``
        controller is there) ``cpus`` CPUs' time, or None where this process cannot make one."""
        if os.geteuid() != 0:
            return None
        name = f"s-{secrets.token_hex(6)}"
        try:
            if (root := _v2()) is not None:
                parent = root / PARENT
                parent.mkdir(exist_ok=True)
                (root / "cgroup.subtree_control").write_text("+memory +pids")
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
                here = parent / name
                here.mkdir()
                (here / "memory.max").write_text(str(memory_bytes))
                (here / "memory.swap.max").write_text("0")
                (here / "pids.max").write_text(str(pids))
                if cpus and (here / "cpu.max").exists():
                    (here / "cpu.max").write_text(f"{int(cpus * 100_000)} 100000")
                return cls([here], [here / "cgroup.procs"])
            if (dirs := _v1()) is not None:
                if cpus and (ROOT / "cpu" / "cgroup.procs").is_file():
                    dirs = {**dirs, "cpu": ROOT / "cpu"}
                made = []
                for controller, root in dirs.items():
                    here = root / PARENT / name
                    here.mkdir(parents=True)
                    made.append(here)
                    if controller == "memory":
                        (here / "memory.limit_in_bytes").write_text(str(memory_bytes))
                    elif controller == "cpu":  # at most `cpus` CPUs: no starving a neighbour
                        (here / "cpu.cfs_period_us").write_text("100000")
                        (here / "cpu.cfs_quota_us").write_text(str(int(cpus * 100_000)))
                    else:
                        (here / "pids.max").write_text(str(pids))
                return cls(made, [d / "cgroup.procs" for d in made])
        except OSError:
            return None
        return None

    def join(self, pid: int) -> None:
        for procs in self.procs:
            procs.write_text(str(pid))

    def close(self) -> None:
        """Remove the cgroup once its processes are gone (they are killed before this)."""
        for here in self.dirs:
            for _ in range(50):
                try:
                    here.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
