"""OS isolation for every process that runs student code: bubblewrap, resource limits.

``bwrap`` (bubblewrap; Debian/Ubuntu package ``bubblewrap``) starts a process in new
namespaces: no network (``--unshare-all``), its own PID namespace (when it ends, the kernel
kills every process left inside, detached or not), an unprivileged uid with no
capabilities, ``--die-with-parent``. Its filesystem is built from a ``View``, and holds
exactly:

* read-only system folders (programs, libraries, a few loader and locale files of ``/etc``);
* this Python and its packages, read-only, **without** the packages the grader hides
  (labkit and the instructor's exercise modules): in each ``site-packages`` such a package
  is covered by ``labkit/grade/blocked`` (its ``__init__`` raises ImportError), its
  ``.dist-info`` by an empty folder, and a ``.pth`` file or editable-install finder naming
  it by an empty file, so ``import labkit`` finds nothing there by any path;
* the ``View``'s read-only binds (the one labkit copy prepared for this process, data,
  weight caches), at neutral paths under ``/sandbox``;
* the ``View``'s private writable folders: each a tmpfs of a fixed size, as are ``/tmp`` and
  ``/dev/shm``. Nothing the process writes reaches the host's disk or outlives it, and the
  grader never has to open, copy or delete anything student code could have written.

The root, ``/dev`` and every bind are read-only. Where bwrap is missing or cannot start
(macOS, a kernel without user namespaces), workers run with weaker isolation and the grader
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
import sysconfig
from collections.abc import Callable, Iterable
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
INSIDE = "/sandbox"  # where a View's binds and private folders appear in the sandbox


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits for a student's workers (and the kernel they start),
    and the sizes of the sandbox's private writable folders (tmpfs: memory, not disk)."""

    memory_bytes: int = 8 * 2**30  # address space (RLIMIT_AS)
    processes: int = 256  # new processes beyond those this user already runs (RLIMIT_NPROC)
    file_bytes: int = 2**30  # largest file written (RLIMIT_FSIZE)
    open_files: int = 1024  # RLIMIT_NOFILE
    cpu_seconds: int = 3600  # RLIMIT_CPU, per process
    disk_bytes: int = 2**30  # the private working folder (a sized tmpfs in the sandbox)
    tmp_bytes: int = 256 * 2**20  # /tmp
    shm_bytes: int = 256 * 2**20  # /dev/shm (PyTorch's shared memory)
    ram_bytes: int = 6 * 2**30  # all the sandbox's memory together (its cgroup, where made)
    tasks: int = 512  # all its processes and threads together (its cgroup, where made)

    def settings(self) -> list[tuple[int, int]]:
        """``(resource, value)`` pairs, computed in the parent (the child only sets them)."""
        import resource

        pairs = []
        for what, value in (
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_NPROC, _processes_of_this_user() + self.processes),
            (resource.RLIMIT_FSIZE, min(self.file_bytes, self.disk_bytes)),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_CPU, self.cpu_seconds),
        ):
            hard = resource.getrlimit(what)[1]
            pairs.append((what, value if hard == resource.RLIM_INFINITY else min(value, hard)))
        return pairs


@dataclass(frozen=True)
class View:
    """What one sandboxed process sees besides the system and Python.

    Args:
        ro: ``(path inside, host path)`` pairs bound read-only (a file or a folder).
        tmpfs: ``(path inside, bytes)``: private writable folders of that size.
        hidden: top-level import names left out of every ``site-packages`` (labkit and the
            instructor's exercise modules: the process gets its own prepared copy instead).
    """

    ro: tuple[tuple[str, Path], ...] = ()
    tmpfs: tuple[tuple[str, int], ...] = ()
    hidden: frozenset[str] = frozenset({"labkit"})


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
    view = View(tmpfs=((f"{INSIDE}/work", 2**20),))
    argv = wrap([sys.executable, "-I", "-c", "import os; print(os.getuid())"], view, Limits())
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start: {err}"
    if done.returncode != 0 or done.stdout.strip() != str(NOBODY).encode():
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap could not start a sandbox here ({why[-1] if why else done.returncode})"
    return ""


def python_roots() -> list[str]:
    """Folders this Python and its packages live in (the venv and the base installation)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    return sorted(r for r in roots if r and r != "/" and _readable_dir(r))


def _readable_dir(path: str | Path) -> bool:
    """A folder this user can list (one it cannot read it cannot bind either)."""
    try:
        return Path(path).is_dir() and os.access(path, os.R_OK | os.X_OK)
    except OSError:
        return False


def site_dirs(roots: Iterable[str]) -> list[Path]:
    """Every ``site-packages``/``dist-packages`` folder inside ``roots``, the system's, and any
    on ``sys.path`` (one a ``.pth`` file added; a folder of another name is never bound)."""
    found = {Path(p) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    found.update(Path(p) for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))
    for root in [*roots, "/usr", "/usr/local"]:
        if _readable_dir(root):
            for pattern in ("lib*/python3*/site-packages", "lib*/python3*/dist-packages"):
                found.update(Path(root).glob(pattern))
            found.update(Path(root).glob("lib/python3/dist-packages"))
    return sorted(p for p in found if _readable_dir(p) and not p.is_symlink())


def hidden_entries(site: Path, hidden: frozenset[str]) -> set[str]:
    """Entries of ``site`` that make a hidden name importable: the package or module itself,
    its distribution's metadata, editable-install finders naming it, and ``.pth`` files
    that import code naming it or add a folder that holds it."""
    names = {n.lower() for n in hidden}
    found = set()
    for entry in os.scandir(site):
        base = entry.name.lower()
        stem = base.split("-")[0].split(".")[0]
        if stem in names or base.removesuffix(".py") in names:
            found.add(entry.name)  # labkit/, labkit.py, labkit-0.1.0.dist-info, labkit.egg-link
        elif base.startswith("__editable__") and any(n in base for n in names):
            found.add(entry.name)  # setuptools' editable finder and its .pth
        elif base.endswith(".pth") and _pth_reaches(Path(entry.path), names):
            found.add(entry.name)
    return found


def _pth_reaches(pth: Path, names: set[str]) -> bool:
    """Whether a ``.pth`` file can make one of ``names`` importable: an ``import`` line (code
    run at start-up) mentioning it, or a folder line whose folder holds it. A folder whose
    own path merely contains the name (``/opt/labkit-ci/venv/...``) is not a reason."""
    try:
        lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return True  # unreadable here: cover it rather than guess
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("import ", "import\t")):
            if any(n in line.lower() for n in names):
                return True
            continue
        folder = pth.parent / line  # relative lines are relative to the site folder
        try:
            held = {e.name.lower() for e in os.scandir(folder)}
        except OSError:
            continue  # not a folder: Python skips the line too
        if any(
            n in held or f"{n}.py" in held or any(h.startswith(f"{n}.") for h in held)
            for n in names
        ):
            return True
    return False


BLOCKED = Path(__file__).with_name("blocked")  # a package whose __init__ raises ImportError


def _python_args(hidden: frozenset[str]) -> list[str]:
    """Bind this Python read-only, each hidden entry of a site folder covered: a package by
    ``BLOCKED`` (importing it fails), a file by an empty one, metadata by an empty folder."""
    roots = python_roots()
    args: list[str] = []
    for root in roots:
        args += ["--ro-bind", root, root]
    for site in site_dirs(roots):
        if not any(site.is_relative_to(r) for r in [*roots, *_SYSTEM_RO]):
            args += ["--ro-bind", str(site), str(site)]  # on sys.path through a .pth file
        for name in sorted(hidden_entries(site, hidden)):
            entry = site / name
            if entry.is_dir() and not entry.is_symlink():
                empty = name.endswith((".dist-info", ".egg-info"))
                args += (
                    ["--tmpfs", str(entry)] if empty else ["--ro-bind", str(BLOCKED), str(entry)]
                )
            else:
                args += ["--ro-bind", "/dev/null", str(entry)]
    return args


def wrap(argv: list[str], view: View, limits: Limits, cwd: str | None = None) -> list[str]:
    """``argv`` run inside bubblewrap with ``view``'s binds and private folders.

    Args:
        argv: the command (paths inside the sandbox).
        view: what it may read and write besides the system and Python.
        limits: sizes of ``/tmp`` and ``/dev/shm``.
        cwd: its working folder (inside).
    """
    # --as-pid-1: the worker itself is PID 1 (and not dumpable), so no bwrap init holds the
    # grader's pipes where a student process could open them as /proc/1/fd/*.
    cmd = [bwrap_path() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    cmd += ["--as-pid-1"]
    cmd += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    for path in _SYSTEM_RO + _ETC_RO:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--perms", "1777", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm"]
    cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    cmd += _python_args(view.hidden)
    for inside, size in view.tmpfs:
        cmd += ["--perms", "0700", "--size", str(int(size)), "--tmpfs", inside]
    for inside, host in view.ro:  # after the tmpfs: a bind inside a private folder stays read-only
        cmd += ["--ro-bind", str(host), inside]
    if cwd is not None:
        cmd += ["--chdir", cwd]
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/"]
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
