"""Process hygiene for the grader's workers; imports nothing but the standard library.

``probe_boot.py`` loads this file by its path (it must never import ``labkit``); the execute
worker imports it by name.
"""

from __future__ import annotations

import os
import signal


def make_undumpable() -> None:
    """Other processes of this uid (the student's code) cannot open this one's /proc files
    (its memory, its pipes) or ptrace it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def subreaper() -> None:
    """Orphans of the children (a detached, double-forked process) become this process's
    children, so ``kill_descendants`` finds them even outside a PID namespace."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def children() -> list[int]:
    me, found = os.getpid(), []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me:
                found.append(int(name))
    return found


def kill_descendants() -> None:
    """Kill and reap everything the last child left running (orphans reparent to us)."""
    for _ in range(100):
        kids = children()
        if not kids:
            return
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in kids:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
