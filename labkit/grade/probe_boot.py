"""The hidden-test worker's first process: run as a script, it never imports labkit.

``python -I probe_boot.py`` reads its job from stdin (one JSON line: nothing on disk for a
student's code to read or rewrite), imports torch and numpy once, then for each exercise
forks a child that imports labkit from *that exercise's* read-only copy, in which labkit's
reference of the exercise is absent (its body replaced by a stub when the grader prepared
the lab), and runs ``labkit.grade.worker.observe_exercise``. This process holds no labkit
code at all, so a child cannot find the reference in memory it inherited.

This process times each child and reports one line per exercise on stdout,
``<nonce> {"id": ..., "state": "done" | "timeout" | "crashed", "code": ..., "sha256": ...}``;
the children write nowhere near stdout. It is not dumpable, so the children (student code,
same uid) cannot read its memory or write into its pipes through /proc. Between exercises it
removes stale result files before a child starts and, in the sandbox (its own PID
namespace) or among its descendants (it is their subreaper), kills every process left over,
then records the digest of the child's results:
a process of one exercise (whose copy holds the *other* exercises' references) cannot write
or rewrite another exercise's results, and the grader refuses a file whose digest changed.
"""

import json
import os
import signal
import sys
import time


def _load_procs():
    """``labkit/grade/procs.py`` loaded by its path: importing it by name would import
    ``labkit`` (and with it references) into this process."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "procs.py")
    spec = importlib.util.spec_from_file_location("_labkit_grade_procs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(item: dict, job: dict) -> None:
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.path.insert(0, item["lib"])
    from labkit.grade.worker import observe_exercise

    observe_exercise(item, job)


def _digest(path: str) -> str:
    """SHA-256 of a regular file (never through a link), or "" when there is none."""
    import hashlib
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        h = hashlib.sha256()
        for chunk in iter(lambda: os.read(fd, 2**20), b""):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except IsADirectoryError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def main() -> None:
    job = json.loads(sys.stdin.readline())
    nonce = job["nonce"]
    procs = _load_procs()
    procs.make_undumpable()
    procs.subreaper()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    try:  # imported once, before any fork; they hold no labkit code
        import numpy  # noqa: F401
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"{nonce} ready", flush=True)
    for item in job["exercises"]:
        for suffix in (".npz", ".progress", ".tmp.npz"):  # left by an earlier child?
            _remove(item["out"] + suffix)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(item, job)
            except BaseException:  # noqa: BLE001
                code = 70
            finally:
                os._exit(code)
        deadline = start + job["exercise_timeout"]
        state: dict = {"id": item["id"]}
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                state.update(state="done" if code == 0 else "crashed", code=code)
                break
            if time.monotonic() > deadline:
                state["state"] = "timeout"
                break
            time.sleep(0.02)
        try:  # the child's group: the child and anything it left running
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if job.get("sandboxed"):  # own PID namespace: every other process is the student's
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        if state["state"] == "timeout":
            os.waitpid(pid, 0)
        procs.kill_descendants()
        state["seconds"] = round(time.monotonic() - start, 3)
        state["sha256"] = _digest(item["out"] + ".npz")
        print(f"{nonce} {json.dumps(state)}", flush=True)


if __name__ == "__main__":
    main()
