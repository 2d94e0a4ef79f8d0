"""The sandbox itself (bubblewrap via `labkit.grade.sandbox.wrap`) and the fallback without it.

The direct tests run a small Python under `wrap()` (no torch: fast) and check what it can
see, write and reach; they are skipped where bubblewrap cannot start (CI installs it).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from _grading import DEMO_LAB, HIDDEN_DIR, demo_notebooks, write

from labkit.grade import Options, grade, write_summary
from labkit.grade.sandbox import NOBODY, Limits, View, preexec, sandbox_problem, wrap

SANDBOX = not sandbox_problem()
needs_bwrap = pytest.mark.skipif(not SANDBOX, reason=f"no sandbox here: {sandbox_problem()}")

PROBE = """\
import os, pathlib, socket, subprocess, sys
secret, ro, rw, port = sys.argv[1:5]
print("uid", os.getuid())
print("secret", pathlib.Path(secret).exists())
for name, folder in (("ro", ro), ("rw", rw)):
    try:
        (pathlib.Path(folder) / "written.txt").write_text("x")
        print(name, "writable")
    except OSError:
        print(name, "read-only")
try:
    socket.create_connection(("127.0.0.1", int(port)), timeout=2)
    print("network yes")
except OSError:
    print("network no")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # sandbox-orphan"],
                 start_new_session=True)
"""


@needs_bwrap
def test_a_wrapped_process_sees_only_its_binds_and_leaves_nothing_behind(tmp_path):
    secret = write(tmp_path / "instructor", "secret.txt", "TOKEN")
    lib = tmp_path / "lib"
    lib.mkdir()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    view = View(ro=(("/sandbox/lib", lib),), tmpfs=(("/sandbox/work", 2**20),))
    argv = [sys.executable, "-I", "-c", PROBE, str(secret), "/sandbox/lib", "/sandbox/work"]
    done = subprocess.run(
        wrap([*argv, str(port)], view, Limits(), cwd="/sandbox/work"),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec(Limits()),
    )
    server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:5] == [
        f"uid {NOBODY}",
        "secret False",
        "ro read-only",
        "rw writable",
        "network no",
    ]
    assert list(lib.iterdir()) == []  # the private folder is memory: nothing reached the host
    assert list(tmp_path.rglob("written.txt")) == []
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", "sandbox-orphan"], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # the detached sleeper died with the sandbox


def test_without_bubblewrap_require_refuses_and_fallback_warns(demo_env, tmp_path, monkeypatch):
    _, solution = demo_notebooks(tmp_path / "build")
    write(tmp_path / "subs", "honest.ipynb", solution)
    options = Options(source=DEMO_LAB.parent, hidden_dirs=(HIDDEN_DIR,), run=False, progress=False)
    empty = tmp_path / "no-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap on PATH
    sandbox_problem.cache_clear()
    try:
        with pytest.raises(ValueError, match="--require-sandbox: no sandbox here: bubblewrap"):
            grade(
                tmp_path / "subs",
                "00",
                tmp_path / "out",
                Options(**{**vars(options), "sandbox": "require"}),
            )
        results = grade(tmp_path / "subs", "00", tmp_path / "out", options)  # auto: falls back
    finally:
        monkeypatch.undo()
        sandbox_problem.cache_clear()
    assert [(r.sandbox, r.score) for r in results] == [("none", 4.0)]
    header, row = (tmp_path / "out" / "gradebook.csv").read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("sandbox")] == "none"
    printed: list[str] = []
    write_summary(results, 1.0, printed.append)
    assert printed[-1].startswith("WARNING: 1 submission(s) ran WITHOUT the sandbox")
