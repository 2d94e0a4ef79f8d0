"""The grader's pieces: the wire format, running definitions, hidden tests, arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _grading import (
    DEMO_LAB,
    write,
)

from labkit import checks
from labkit.checks import Case
from labkit.cli import main as cli_main
from labkit.grade.hidden import HIDDEN, exercise_tests, hidden, load_hidden_tests
from labkit.grade.wire import decode, encode, read_observations
from labkit.grade.worker import run_definitions


def test_observations_round_trip_without_pickles(tmp_path):
    value = {
        "t": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3),
        "a": np.array([[1, 2]], dtype=np.uint8),
        "s": np.float32(0.5),
        "xs": (1, 2.5, float("nan"), None, "text", [True]),
    }
    arrays: dict = {}
    back = decode(encode(value, arrays), arrays)
    assert back["t"].dtype == torch.bfloat16 and torch.equal(back["t"], value["t"])
    assert back["a"].dtype == np.uint8 and back["s"].dtype == np.float32
    assert checks.compare(back, value) is None
    assert back["xs"][:2] == (1, 2.5) and np.isnan(back["xs"][2])
    # A file holding a pickle is refused, not loaded.
    path = tmp_path / "00.npz"
    np.savez(path, __meta__=np.frombuffer(b"{}", dtype=np.uint8), a0=np.array([object()]))
    with pytest.raises(ValueError, match="pickle"):
        read_observations(path.read_bytes())


def test_only_the_definitions_of_an_exercise_cell_run():
    source = (
        "import math\n"
        "LIMIT = 3\n"
        "def f(x):\n"
        "    return math.floor(x) + LIMIT\n"
        "print('hello')\n"
        "lk.checks.RESULTS['00.x'] = 'pass'\n"
        "while True:\n"
        "    pass\n"
        "y = 1 / 0\n"
    )
    namespace: dict = {}
    notes = run_definitions(source, namespace)
    assert namespace["f"](2.5) == 5 and "y" not in namespace
    assert notes == [
        "line 9 of your exercise cell raised ZeroDivisionError: division by zero",
        "the grader ran only the imports and definitions of your exercise cell; line(s) 5, 6, "
        "7 (other statements) were not run",
    ]
    assert run_definitions("def f(:\n", {}) == [
        "your exercise cell has a syntax error on line 1: invalid syntax"
    ]


def test_instructor_hidden_tests_replace_builtin_ones(demo_env, tmp_path):
    folder = tmp_path / "mine"
    write(
        folder,
        "lab00.py",
        "from labkit.checks import Case\nfrom labkit.grade.hidden import hidden\n\n"
        "@hidden('00.scale', public=False)\ndef mine():\n"
        "    import numpy as np\n    return [Case((np.ones((2, 2)),), label='all ones')]\n",
    )
    write(folder, "lab01.py", "raise RuntimeError('another lab: not imported')\n")
    before = {k: list(v) for k, v in HIDDEN.items()}
    try:
        # As if labkit shipped hidden tests for 00.scale (labkit/hidden_tests/lab00.py).
        hidden("00.scale")(lambda: [Case((np.eye(3),), label="built in")])
        load_hidden_tests("00", [folder])
        labels = [t.label for t in exercise_tests(checks.get_exercise("00.scale"))]
        assert labels == ["all ones"]
        load_hidden_tests("00", [])  # a later run without the folder: built-in ones again
        labels = [t.label for t in exercise_tests(checks.get_exercise("00.scale"))]
        assert labels == ["a 2x2 uint8 image", "3 random images", "built in"]
    finally:
        HIDDEN.clear()
        HIDDEN.update(before)


def test_bad_arguments_are_clear_errors(demo_env, tmp_path, capsys):
    write(tmp_path / "subs", "a.ipynb", "{}")
    base = ["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out")]
    assert cli_main([*base, "--lab", "first"]) == 2
    assert "--lab must be a lab number such as 01, got 'first'" in capsys.readouterr().err
    assert cli_main([*base, "--lab", "07", "--source", str(DEMO_LAB.parent)]) == 2
    assert "no lab source for lab(s) 07" in capsys.readouterr().err
    assert cli_main([*base, "--lab", "00", "--source", str(tmp_path / "nope")]) == 2
    assert "lab source folder" in capsys.readouterr().err
    assert cli_main(["grade", str(tmp_path / "none"), "--lab", "00", "--out", "x"]) == 2
    assert "submissions" in capsys.readouterr().err


def test_remove_tree_empties_what_student_code_left_without_following_links(tmp_path):
    import os

    from labkit.grade.workspace import remove_tree

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    tree = tmp_path / "world"
    deep = tree / "locked" / "deeper"
    deep.mkdir(parents=True)
    (deep / "x\nodd \x1b name").write_text("x")
    (tree / b"\xff\xfe".decode("utf-8", "surrogateescape")).write_text("not UTF-8")
    os.mkfifo(tree / "fifo")
    os.symlink(victim, tree / "link-to-victim")
    os.symlink(victim / "keep.txt", deep / "link-to-file")
    os.chmod(deep, 0)
    os.chmod(deep.parent, 0)
    remove_tree(tree)
    assert not os.path.lexists(tree)
    assert (victim / "keep.txt").read_text() == "precious"


def test_student_text_is_escaped_for_each_reader():
    from labkit.grade.text import block, csv_cell, inline, terminal

    assert terminal("a\x1b[2Kb\rc\nd\u202e") == "a\\x1b[2Kb\\x0dc\\x0ad\\u202e"
    assert inline("## x <script>") == "\\#\\# x \\<script\\>"
    assert inline("one\ntwo") == "one two"
    lines = block("x\n````\n## y")
    assert lines[0] == "`````text" and lines[-1] == "`````" and "````" in lines[1:-1]
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("a\nb\x1b") == "a b\\x1b"


def test_json_from_students_is_bounded_in_values_and_depth():
    from labkit.grade.bounded import TooLarge, loads_bounded

    assert loads_bounded(b'{"a": [1, [2]]}', max_bytes=100) == {"a": [1, [2]]}
    many = b"[" + b"[]," * 300_000 + b"[]]"  # 900 KB, 300,001 lists
    with pytest.raises(TooLarge, match="more than 200,000 JSON values"):
        loads_bounded(many, max_bytes=2**20)
    with pytest.raises(TooLarge, match="nested more than 64"):
        loads_bounded(b"[" * 65 + b"]" * 65, max_bytes=2**20)
    with pytest.raises(TooLarge, match="larger than"):
        loads_bounded(b"[1]", max_bytes=2)


def test_the_sandbox_hides_labkit_entries_of_a_site_folder(tmp_path):
    from labkit.grade.sandbox import hidden_entries

    site = tmp_path / "site-packages"
    for name in ("labkit", "labkit-0.1.0.dist-info", "torch", "labkit_extras", "numpy"):
        (site / name).mkdir(parents=True)
    (site / "__editable___labkit_0_1_0_finder.py").write_text("")
    (site / "__editable__.labkit-0.1.0.pth").write_text("import __editable___labkit_0_1_0_finder")
    checkout = tmp_path / "labkit-checkout"
    (checkout / "labkit").mkdir(parents=True)
    (site / "course.pth").write_text(f"# a source checkout\n{checkout}\n")
    deps = tmp_path / "labkit-ci" / "venv" / "site-packages"  # "labkit" only in its path
    (deps / "tqdm").mkdir(parents=True)
    (site / "deps.pth").write_text(f"{deps}\n/no/such/folder\n")
    (site / "hook.pth").write_text("import sys; sys.modules.get('labkit')\n")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "demo_exercises.py").write_text("")
    (site / "relative.pth").write_text("../flat\n")
    (site / "distutils-precedence.pth").write_text("import os\n")
    (site / "demo_exercises.py").write_text("")
    assert hidden_entries(site, frozenset({"labkit", "demo_exercises"})) == {
        "labkit",
        "labkit-0.1.0.dist-info",
        "__editable___labkit_0_1_0_finder.py",
        "__editable__.labkit-0.1.0.pth",
        "course.pth",
        "hook.pth",
        "relative.pth",
        "demo_exercises.py",
    }


def test_round_two_pieces_surrogates_links_and_zip_directories(tmp_path):
    """Red team round 2: a lone surrogate stopped a whole run; bare URLs became links; a
    zip of 760,000 empty entries took the grader to 1.4 GB before any count was checked."""
    import io
    import zipfile
    from types import SimpleNamespace

    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from labkit.grade.report import write_feedback
    from labkit.grade.submissions import StudentResult
    from labkit.grade.text import inline, terminal

    assert terminal("x\ud800y") == "x\\ud800y" and "\\ud800" in inline("x\ud800y")
    result = StudentResult("s", "00", "s.ipynb", "error", detail="x\ud800y")
    result.run = {"status": "error", "error": "RuntimeError: x\ud800y", "cell": -1}
    write_feedback(tmp_path / "feedback", [result], SimpleNamespace(timeout=30))
    assert "\\ud800" in (tmp_path / "feedback" / "s.md").read_text(encoding="utf-8")
    html = markdown2html_mistune(inline("see https://evil.example/x, www.evil.org, a@evil.org"))
    assert "<a " not in html, html
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(20_000):
            archive.writestr(zipfile.ZipInfo(f"{n:x}"), b"")
    with pytest.raises(ValueError, match="too many entries"):
        read_observations(buffer.getvalue())
