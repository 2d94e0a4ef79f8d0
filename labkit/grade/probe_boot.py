"""The hidden-test worker's first process: run as a script, it never imports labkit.

``python -I probe_boot.py`` reads its job from stdin (one JSON line: nothing on disk for a
student's code to read or rewrite), imports torch and numpy once, then for each exercise
forks a child that imports labkit from *that exercise's* read-only copy, in which labkit's
reference of the exercise is absent (its body replaced by a stub when the grader prepared
the lab), and runs ``labkit.grade.worker.observe_exercise``. This process holds no labkit
code at all, so a child cannot find the reference in memory it inherited.

This process times each child and reports one line per exercise on stdout,
``<nonce> {"id": ..., "state": "done" | "timeout" | "crashed", "code": ...}``; the children
write nowhere near stdout. It is not dumpable, so the children (student code, same uid)
cannot read its memory or write into its pipes through /proc.
"""

import json
import os
import signal
import sys
import time


def _undumpable() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _child(item: dict, job: dict) -> None:
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.path.insert(0, item["lib"])
    from labkit.grade.worker import observe_exercise

    observe_exercise(item, job)


def main() -> None:
    job = json.loads(sys.stdin.readline())
    nonce = job["nonce"]
    _undumpable()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    try:  # imported once, before any fork; they hold no labkit code
        import numpy  # noqa: F401
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"{nonce} ready", flush=True)
    for item in job["exercises"]:
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
        if state["state"] == "timeout":
            os.waitpid(pid, 0)
        state["seconds"] = round(time.monotonic() - start, 3)
        print(f"{nonce} {json.dumps(state)}", flush=True)


if __name__ == "__main__":
    main()
