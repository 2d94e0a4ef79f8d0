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
