"""The hidden-test worker's first process: run as a script, it never imports labkit.

``python -I probe_boot.py`` runs in a sandbox of its own for ONE exercise: that sandbox
holds a single copy of labkit, in which the exercise's reference (and its library
equivalents) are absent. It reads its job from stdin (one JSON line), imports torch and
numpy, prints ``ready``, then forks a child that imports labkit from that copy and runs
``labkit.grade.worker.observe_exercise``: the student's definitions and the tests.

The child's stdin, stdout and stderr are ``/dev/null``; it writes its observations into a
pipe to this process, which reads at most ``max_bytes`` of them while timing the child.
When the child ends or runs out of time, this process kills every other process in the
sandbox (its own PID namespace; outside the sandbox, its process group and every
descendant, of which it is the subreaper), then prints one line on stdout::

    <nonce> {"state": "done" | "timeout" | "crashed", "code": ..., "seconds": ...,
             "progress": <the test the child was at>, "data": <base64 of the observations>}

It is not dumpable, so the child (student code, same uid) can neither read its memory nor
write into its pipes through /proc. Nothing is written to disk, so nothing there can be
forged, swapped or left behind.
"""

import base64
import json
import os
import signal
import sys
import threading
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


def _child(job: dict, results: int, progress: int) -> None:
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.path.insert(0, job["lib"])
    from labkit.grade.worker import observe_exercise

    observe_exercise(job, results, progress)


class _Drain:
    """Reads a pipe on a thread, keeping at most ``limit`` bytes (more marks it over)."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.limit, self.chunks, self.size = fd, limit, [], 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                break
            if not chunk:
                break
            if self.size <= self.limit:
                self.chunks.append(chunk[: self.limit + 1 - self.size])
            self.size += len(chunk)
        os.close(self.fd)

    def data(self) -> bytes:
        self.thread.join(timeout=10)
        return b"".join(self.chunks)


def main() -> None:
    job = json.loads(sys.stdin.readline())
    nonce = job.pop("nonce")
    procs = _load_procs()
    procs.make_undumpable()
    procs.subreaper()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    try:  # imported before the fork, where they hold no labkit code: the child starts faster
        import numpy  # noqa: F401
        import torch
        from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"{nonce} ready", flush=True)
    results_r, results_w = os.pipe()
    progress_r, progress_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(results_r)
            os.close(progress_r)
            del nonce  # the child has no use for it
            _child(job, results_w, progress_w)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(results_w)
    os.close(progress_w)
    results = _Drain(results_r, int(job["max_bytes"]))
    progress = _Drain(progress_r, 4096)
    deadline = start + float(job["exercise_timeout"])
    state: dict = {}
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
    procs.kill_descendants()  # now every writer of the pipes is gone: they end
    data = results.data()
    marks = progress.data().split(b"\n")
    state["seconds"] = round(time.monotonic() - start, 3)
    state["progress"] = int(marks[-2]) if len(marks) > 1 and marks[-2].isdigit() else -1
    state["over"] = results.size > results.limit
    state["data"] = base64.b64encode(data[: results.limit]).decode("ascii")
    print(f"{nonce} {json.dumps(state)}", flush=True)


if __name__ == "__main__":
    main()
