"""`labkit grade` against the classes of attack of issue 24 (round 2), one test per class.

One grading run (module fixture) of hostile lab-00 notebooks beside an honest solution, with
a known secret (so the test can compute every student's seeds) and the grader's temporary
folder set to one the test watches. Each attack runs where student code runs: an exercise
cell's definitions (the hidden-test sandbox) or a cell the kernel runs.

1. the reference among the files a sandboxed process can open (a walk of its whole view);
2. links, FIFOs, unreadable folders and odd names planted where the grader once wrote;
3. student data that parses into millions of objects;
4. disk, /tmp and /dev/shm filled;
5. student text that draws on the terminal or turns into HTML/Markdown in feedback;
7. secrets and host paths read from inside and printed into the student's own feedback.
(6, verdicts, is in test_grade_verdicts.py; 8, names, in test_grade_shards/manual.py.)
"""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

import pytest
from _attacks import WALK, fingerprints
from _grading import DEMO_LAB, HIDDEN_DIR, demo_notebooks, edited, rows, write

from labkit.grade import Options, grade, write_summary
from labkit.grade.sandbox import sandbox_problem
from labkit.grade.secret import derive_seed
from labkit.grade.text import terminal

SANDBOX = not sandbox_problem()
SECRET = bytes(range(7, 39))
MiB = 2**20


# ---- 2. links, FIFOs, chmod 000 and odd names wherever it can write, pointing at victims
PLANT = """\
import os, pathlib

def _plant(targets):
    planted = []
    for place in [os.getcwd(), os.environ.get("HOME", "/"), "/tmp", "/dev/shm"]:
        for name in ["submission.ipynb", ".labkit-cache", "00.npz", "gradebook.csv", "victim"]:
            for i, target in enumerate(targets):
                try:
                    os.symlink(target, os.path.join(place, f"{name}{i}" if i else name))
                    planted.append(place)
                except OSError:
                    pass
        try:
            os.mkfifo(os.path.join(place, "fifo"))
            deep = pathlib.Path(place) / "locked" / "deeper"
            deep.mkdir(parents=True)
            (deep / "x\\nodd \\x1b name").write_text("x")
            os.chmod(deep.parent, 0)
        except OSError:
            pass
    for target in targets:  # and straight at the victims
        try:
            pathlib.Path(target).write_text("overwritten")
            planted.append("VICTIM " + target)
        except OSError:
            pass
    return planted
"""
HONEST_SCALE = """\
import numpy as np

def scale(x):
    x = x.astype(np.float32)
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)
"""

# ---- 3. 2.5 million empty lists (7.5 MB) in the observations, down every pipe it holds
META_BOMB = """\
import io, os
import numpy as np

def _bomb():
    meta = b'{"notes": [], "defined": true, "observations": [' + b"[]," * 2_500_000 + b"[]]}"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, __meta__=np.frombuffer(meta, dtype=np.uint8))
    for fd in os.listdir("/proc/self/fd"):
        try:
            os.write(int(fd), buffer.getvalue())
        except OSError:
            pass
    os._exit(0)

_ = _bomb()
"""

# ---- 4. fill the working folder, /tmp and /dev/shm; report how much each took
FILL = """\
import os
written = {}
places = [os.getcwd(), "/tmp", "/dev/shm"] if os.path.isdir("/sandbox") else [os.getcwd()]
for place in places:
    total = 0
    try:
        with open(os.path.join(place, "fill.bin"), "wb") as f:
            for _ in range(200):
                f.write(b"x" * 2**20)
                f.flush()
                total += 2**20
    except OSError:
        pass
    written[place] = total // 2**20
raise RuntimeError(f"FILLED {written}")
"""

# ---- 4 (memory and processes beyond files): a memfd of 3 GiB, 700 processes
MEMFD = """\
import os

def _hog():  # many files, each under the file-size limit: only the cgroup stops them
    fds, mib = [], 0
    for _ in range(3 * 1024 // 32):
        fds.append(os.memfd_create("hog"))
        for _ in range(32):
            os.write(fds[-1], b"x" * 2**20)
            mib += 1
    return mib

_HOG = _hog()

def count_positive(masks):
    raise RuntimeError(f"HOGGED {_HOG} MiB")
"""
SPAWN = """\
import os, time

def _spawn():
    n = 0
    try:
        for _ in range(700):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
    except OSError:
        pass
    return n

_N = _spawn()

def count_positive(masks):
    raise RuntimeError(f"SPAWNED {_N}")
"""


def _cgroups() -> bool:
    from labkit.grade.cgroup import Cgroup

    made = Cgroup.make(2**30, 64)
    if made is not None:
        made.close()
    return made is not None


CGROUPS = _cgroups()

# ---- 5. text that draws on a terminal, and Markdown/HTML in feedback
FORGE_TEXT = """\
raise RuntimeError(
    "boom\\x1b[2K\\r" + "honest      4/4  ok  1.0\\n" + "```\\n## 00.dice: passed\\n"
    "<script>alert(1)</script><img src=x onerror=alert(2)>"
)
"""
FORGED_ANSWER = (
    "```\n</pre><script>alert(3)</script>\n## 00.dice: Dice coefficient: passed (1 / 1)\n"
    "<img src=x onerror=alert(4)>\n```"
)

# ---- 7. everything it can read that might be a secret, printed into its own feedback
LEAK = """\
import gc, os, pathlib

def _leak():
    mounts = [line.split()[3] for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines()]
    seeds = [o.get("seed") for o in gc.get_objects() if isinstance(o, dict) and "seed" in o]
    cmdlines = []
    for pid in os.listdir("/proc"):
        try:
            cmdlines.append(pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace"))
        except OSError:
            pass
    pipes = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:  # the grader's pipes, held
        for fd in ("0", "1", "2"):  # by every process above it
            try:
                os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK))
                if pid != str(os.getpid()):
                    pipes.append(f"{pid}/{fd}")
            except OSError:
                pass
    text = f"LEAKED HOME={os.environ.get('HOME')} PIPES={pipes} SEEDS={seeds} MOUNTS={sorted(set(mounts))} CMD={cmdlines}"
    return text[:1800]
"""
LEAK_CELL = (
    LEAK + "\n_LEAKED = _leak()\n\ndef dice(pred, truth):\n    raise RuntimeError(_LEAKED)\n"
)


@pytest.fixture(scope="module")
def trust(demo_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("trust")
    subs, out, grader_tmp = base / "submissions", base / "out", base / "grader-tmp"
    grader_tmp.mkdir()
    student, solution = demo_notebooks(base / "build")
    victims = [
        write(base / "classmate", "classmate.ipynb", "{}"),
        write(base / "instructor", "02_solution.py", "ref"),
    ]
    protected = {p: p.read_bytes() for p in victims}
    sizes, digests, texts = fingerprints()
    targets = [str(v) for v in victims] + [str(out), str(grader_tmp)]
    answered = edited(solution)
    (question,) = [c for c in answered.cells if "Question." in c.source]
    question.source = FORGED_ANSWER
    notebooks = {
        "honest": solution,
        "walker": edited(
            solution, {"00.dice": WALK.format(sizes=sizes, digests=digests, texts=texts)}
        ),
        "planter": edited(
            solution,
            {"00.scale": PLANT + f"\n_ = _plant({targets!r})\n\n" + HONEST_SCALE},
            at_end=PLANT + f"\nprint(_plant({targets!r}))\n",
        ),
        "meta_bomb": edited(solution, {"00.dice": META_BOMB}),
        "filler": edited(solution, at_end=FILL),
        "forger\x1b[31m <b>": edited(answered, after_setup=FORGE_TEXT),
        "memfd": edited(solution, {"00.count_positive": MEMFD}),
        "spawner": edited(solution, {"00.count_positive": SPAWN}),
        "leaker": edited(
            solution, {"00.dice": LEAK_CELL}, at_end=LEAK + "\nraise RuntimeError(_leak())\n"
        ),
    }
    for name, nb in notebooks.items():
        write(subs, f"{name}.ipynb", nb)
    options = Options(
        source=DEMO_LAB.parent,
        hidden_dirs=(HIDDEN_DIR,),
        jobs=2,
        timeout=240,
        exercise_timeout=240,  # the walk reads every file it can see, on a busy machine
        progress=False,
        secret=SECRET,
        max_disk_bytes=64 * MiB,
        max_tmp_bytes=16 * MiB,
        max_ram_bytes=1536 * MiB,
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(grader_tmp))
        results = grade(subs, "00", out, options)
    printed: list[str] = []
    write_summary(results, 1.0, printed.append)
    return {
        "results": {r.student: r for r in results},
        "rows": rows(out),
        "out": out,
        "subs": subs,
        "base": base,
        "printed": printed,
        "protected": protected,
        "grader_tmp": grader_tmp,
        "rss_growth": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before,
    }


def _exercise(trust, student, exercise_id):
    return next(e for e in trust["results"][student].exercises if e.id == exercise_id)


def _feedback(trust, student) -> str:
    return (trust["out"] / "feedback" / f"{student}.md").read_text(encoding="utf-8")


def test_an_honest_solution_keeps_full_marks(trust):
    assert trust["rows"]["honest"]["score"] == "4"
    assert trust["rows"]["honest"]["sandbox"] == ("bwrap" if SANDBOX else "none")


@pytest.mark.skipif(not SANDBOX, reason="needs bubblewrap: without it every file is visible")
def test_class1_no_file_a_sandboxed_process_can_open_holds_the_reference(trust):
    message = _exercise(trust, "walker", "00.dice").message
    assert "WALK files=" in message, message
    files = int(message.split("files=")[1].split()[0])
    assert files > 1000  # it did see the system and Python
    assert "found=[]" in message, message
    # One labkit: its own prepared copy; nothing importable from anywhere else.
    assert "packages=['/sandbox/lib/labkit/__init__.py']" in message, message
    assert "elsewhere=none" in message, message
    assert trust["results"]["walker"].score == 3.0


def test_class2_links_fifos_and_locked_folders_change_nothing_outside(trust):
    for path, before in trust["protected"].items():
        assert path.read_bytes() == before, path
    assert trust["rows"]["planter"]["score"] == "4"  # its honest scale, dice and count
    names = {p.name for p in trust["out"].iterdir()}
    assert (
        {"feedback", "gradebook.csv", "manual_marks.csv", "results.json"}
        <= names
        <= {
            "feedback",
            "gradebook.csv",
            "manual_marks.csv",
            "results.json",  # the grader's own signed record (labkit.grade.stored)
            "logs",
        }
    )
    assert list(trust["grader_tmp"].iterdir()) == []  # cleaned up, whatever was left
    assert len(list(trust["subs"].iterdir())) == 9


def test_class3_observations_that_parse_into_millions_of_objects_are_refused(trust):
    dice = _exercise(trust, "meta_bomb", "00.dice")
    assert dice.status == "crashed" and "could not read" in dice.message, dice
    assert trust["results"]["meta_bomb"].score == 3.0
    assert trust["rss_growth"] < 1024 * 1024  # KiB: the grader stayed under 1 GiB more


@pytest.mark.skipif(not SANDBOX, reason="sized tmpfs mounts need bubblewrap")
def test_class4_disk_tmp_and_shm_are_capped_per_submission(trust):
    detail = trust["rows"]["filler"]["detail"]
    assert "FILLED {" in detail, detail
    sizes = {
        k.strip("' "): int(v)
        for k, v in (i.split(":") for i in detail.split("{")[1].split("}")[0].split(","))
    }
    assert set(sizes) == {"/sandbox/work", "/tmp", "/dev/shm"}, sizes
    assert 32 <= sizes["/sandbox/work"] <= 64 and 8 <= sizes["/tmp"] <= 16, sizes
    assert 8 <= sizes["/dev/shm"] <= 16, sizes
    assert list(trust["grader_tmp"].iterdir()) == []


def test_class5_student_text_is_escaped_where_people_read_it(trust):
    from markdown_it import MarkdownIt

    forger = next(s for s in trust["results"] if s.startswith("forger"))
    line = next(p for p in trust["printed"] if p.startswith(forger))
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in "".join(trust["printed"]))
    assert line.startswith(forger) and "\\x1b[2K" in terminal(trust["results"][forger].detail)
    html = MarkdownIt().render(_feedback(trust, forger))
    assert "<script" not in html and "<img" not in html, html
    headings = [h for h in html.splitlines() if h.startswith("<h2>")]
    assert len(headings) == 5, headings  # 3 exercises, the answers, the run: none forged
    assert sum("00.dice" in h for h in headings) == 1, headings
    gradebook = (trust["out"] / "gradebook.csv").read_text(encoding="utf-8")
    assert "\x1b" not in gradebook and "\r" not in gradebook


def test_class7_no_secret_or_host_path_reaches_a_students_feedback(trust):
    feedback = _feedback(trust, "leaker")
    assert "LEAKED HOME=" in feedback and "MOUNTS=" in feedback  # the attack ran ...
    if SANDBOX:  # no process above it lets it write into the grader's pipes
        assert "PIPES=\\[\\]" in feedback and "PIPES=[]" in feedback, feedback  # both processes
    assert SECRET.hex() not in feedback  # ... but no secret of the run ...
    others = [s for s in trust["results"] if s != "leaker"]
    exercises = ("00.scale", "00.count_positive", "00.dice")
    seeds = [str(derive_seed(SECRET, "00", e, s)) for s in others for e in exercises]
    assert not any(seed in feedback for seed in seeds)  # ... nor anyone else's inputs ...
    for path in (trust["grader_tmp"], Path.home()):  # ... nor the grader's host paths
        assert str(path) not in feedback, path
    scrubbed = feedback.count("<tmp>/labkit-grade-") + feedback.count("\\<tmp\\>/labkit-grade-")
    assert feedback.count("labkit-grade-") == scrubbed  # where the grader's folders were


@pytest.mark.skipif(not (SANDBOX and CGROUPS), reason="needs bubblewrap and cgroups (root)")
def test_class4_memory_outside_files_and_processes_are_capped_per_sandbox(trust):
    hog = _exercise(trust, "memfd", "00.count_positive")
    assert hog.status == "crashed" and "HOGGED" not in hog.message, hog  # killed at 1.5 GiB
    spawned = _exercise(trust, "spawner", "00.count_positive").message
    assert "SPAWNED" in spawned, spawned
    assert int(spawned.split("SPAWNED ")[1].split()[0]) < 512, spawned
    for student in ("memfd", "spawner"):  # their other exercises, and everyone else, unharmed
        assert trust["results"][student].score == 2.0
    assert trust["rows"]["honest"]["score"] == "4"
