"""Exercise checks: verdicts in a student's words, fallbacks, the one record of outcomes.

In-process tests use the demo lab's real reference functions (tests/fixtures/demo_exercises.py);
one test executes a student notebook with a real kernel: one exercise right, one wrong, one
left as a stub.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import checks
from labkit.checks import Case, CheckError, Exercise, compare
from labkit.checks.verdict import STUB
from labkit.course.build import build_lab, exercise_cells

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
import demo_exercises  # noqa: E402  (registers 00.scale, 00.count_positive, 00.dice)

pytestmark = pytest.mark.usefixtures("fresh_records")


def test_correct_function_passes_and_is_kept(capsys):
    def scale(x):
        x = x.astype(np.float32)
        return (x - x.min()) / (x.max() - x.min())

    used = checks.check("00.scale", scale)
    assert used is scale
    assert capsys.readouterr().out.startswith("[PASS] Min-max scaling (00.scale)")
    assert checks.RESULTS["00.scale"] == {"status": "pass", "own": True, "message": ""}
    assert checks.SUBMITTED["00.scale"] is scale


def test_wrong_dtype_fails_with_expected_and_got_then_falls_back(capsys):
    def scale(x):
        return (x - x.min()) / (x.max() - x.min())  # float64, not float32

    used = checks.check("00.scale", scale)
    out = capsys.readouterr().out
    assert used is demo_exercises.scale
    assert "[FAIL] Min-max scaling (00.scale)" in out
    assert "expected dtype float32, got dtype float64" in out
    assert "Hint: your result is float64 where float32 is expected" in out  # the diagnosis
    assert "From here on, `scale` is labkit's version, not yours" in out
    assert checks.RESULTS["00.scale"]["status"] == "fail"
    assert checks.RESULTS["00.scale"]["own"] is False
    assert checks.SUBMITTED["00.scale"] is scale  # the student's own, not the fallback


def test_wrong_values_name_the_case_the_largest_difference_and_where(capsys):
    def scale(x):
        return (x / 255).astype(np.float32)  # divides by 255 instead of the range

    checks.check("00.scale", scale)
    out = capsys.readouterr().out
    assert "on 3 random images" in out  # the first case happens to span 0..255
    assert "largest difference" in out and "at index (" in out
    assert "expected values in [0, 1]" in out


def test_stub_is_reported_as_not_implemented_and_reference_is_used(capsys):
    def dice(pred, truth):
        # YOUR CODE HERE
        raise NotImplementedError()

    used = checks.check("00.dice", dice)
    out = capsys.readouterr().out
    assert out.startswith("[TODO] Dice coefficient (00.dice): not implemented yet")
    assert used is demo_exercises.dice
    assert checks.RESULTS["00.dice"] == {
        "status": "stub",
        "own": False,
        "message": STUB,
    }


def test_crash_missing_return_and_in_place_change_are_explained(capsys):
    def crashes(masks):
        return masks.sum(axis=3)

    def no_return(masks):
        (masks > 0).sum(axis=(1, 2))

    def in_place(masks):
        result = (masks > 0).reshape(len(masks), -1).sum(axis=1).astype(np.int64)
        masks[:] = 0  # right answer, but the caller's masks are wiped
        return result

    checks.check("00.count_positive", crashes)
    assert "your function raised AxisError" in capsys.readouterr().out
    checks.check("00.count_positive", no_return)
    assert "returned None; did you forget `return`?" in capsys.readouterr().out
    checks.check("00.count_positive", in_place)
    out = capsys.readouterr().out
    assert "changed its input in place" in out
    assert checks.RESULTS["00.count_positive"]["status"] == "fail"


def test_strict_mode_raises(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV_VAR, "1")
    with pytest.raises(CheckError, match="00.dice"):
        checks.check("00.dice", lambda p, t: 0.0)


def test_unknown_id_lists_registered_exercises():
    with pytest.raises(KeyError, match="00.scale"):
        checks.get_exercise("00.nope")


def test_registry_is_lazy_and_refuses_conflicting_definitions():
    lazy = Exercise("99.sqrt", "Square root", "sqrt", "no_such_module_xyz:f", cases=list)
    checks.register(lazy)  # nothing imported yet: the reference is only a path
    try:
        checks.register(lazy)  # the same definition again is harmless
        with pytest.raises(ValueError, match="already registered"):
            checks.register(Exercise("99.sqrt", "Other", "sqrt", "math:sqrt", cases=list))
        with pytest.raises(ImportError, match="no_such_module_xyz:f"):
            lazy.reference_impl()
    finally:
        checks.EXERCISES.pop("99.sqrt")
    with pytest.raises(ValueError, match="must look like"):
        Exercise("1.x", "t", "x", "math:sqrt", cases=list)


def test_an_exercise_module_that_failed_to_import_is_imported_again(tmp_path, monkeypatch):
    """An instructor's LABKIT_EXERCISE_MODULES module whose import fails (here: a package it
    needs is missing) is tried again on the next lookup, not skipped for the whole kernel."""
    from labkit.checks import registry as checks_registry

    (tmp_path / "retry_exercises.py").write_text(
        "import PIL  # a third-party package this lab needs\n"
        "from labkit.checks import Exercise, register\n"
        "register(Exercise('98.sqrt', 'Square root', 'sqrt', 'math:sqrt', cases=list))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(checks.EXERCISE_MODULES_ENV_VAR, "retry_exercises")
    monkeypatch.setattr(checks_registry, "_loaded_modules", False)  # as in a fresh kernel
    try:
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "PIL", None)  # PIL is not installed (yet)
            with pytest.raises(ModuleNotFoundError, match="PIL"):
                checks.lab_exercises("98")
        assert [e.id for e in checks.lab_exercises("98")] == ["98.sqrt"]
    finally:
        checks.EXERCISES.pop("98.sqrt", None)
        sys.modules.pop("retry_exercises", None)


def test_custom_test_for_a_class_exercise(capsys):
    # Blocks such as nn.Module classes cannot be compared output-by-output with fresh random
    # weights; a custom test checks what matters (here: the output shape).
    class Reference(torch.nn.Module):
        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    def shape_test(student, reference):
        x = torch.zeros(2, 3, 8, 8)
        checks.expect(tuple(student(3, 5)(x).shape), (2, 5, 8, 8), "output shape")

    class NoPadding(torch.nn.Module):
        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.conv = torch.nn.Conv2d(c_in, c_out, 3)

        def forward(self, x):
            return self.conv(x)

    ex = checks.register(Exercise("99.block", "Conv block", "Block", Reference, test=shape_test))
    try:
        assert checks.check("99.block", Reference) is Reference
        assert checks.check("99.block", NoPadding) is Reference
        out = capsys.readouterr().out
        assert "[PASS] Conv block" in out
        assert "in output shape: expected (2, 5, 8, 8), got (2, 5, 6, 6)" in out
    finally:
        checks.EXERCISES.pop(ex.id)


@pytest.mark.parametrize(
    "got, expected, message",
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), "expected shape (3, 2), got shape (2, 3)"),
        (
            torch.zeros(2),
            np.zeros(2),
            "expected a numpy array of shape (2,), dtype float64, got a torch tensor",
        ),
        (torch.zeros(2, dtype=torch.int64), torch.zeros(2), "expected dtype torch.float32"),
        (torch.tensor(0.5), 0.75, "expected 0.75, got 0.5"),
        ({"dice": 0.5}, {"dice": 0.5, "iou": 0.3}, "missing keys ['iou']"),
        ([1, 2], [1, 2, 3], "expected 3 items, got 2"),
        (np.array([0.0, np.nan]), np.array([0.0, 1.0]), "got values in [0, 0]"),
    ],
)
def test_compare_explains_mismatches(got, expected, message):
    assert message in compare(got, expected)


@pytest.mark.parametrize(
    "got, expected",
    [
        (np.float32(0.5), 0.5),
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7])),
        (np.array([np.nan, 1.0]), np.array([np.nan, 1.0])),
        (float("nan"), float("nan")),
        ({"a": [1, 2]}, {"a": [1, 2]}),
    ],
)
def test_compare_accepts_matches(got, expected):
    assert compare(got, expected) is None


def test_cases_from_plain_tuples_are_wrapped():
    ex = Exercise("99.t", "t", "f", "math:sqrt", cases=lambda: [(4.0,)])
    assert ex.make_cases() == [Case((4.0,))]
    assert checks.run_tests(ex, lambda x: x**0.5).status == "pass"
    assert checks.run_tests(ex, lambda x: x / 2).status == "pass"  # 4/2 == sqrt(4): 1 case
    assert checks.run_tests(ex, lambda x: x).message == "expected 2, got 4"


@pytest.mark.slow
def test_student_notebook_in_a_real_kernel_pass_fail_stub(tmp_path):
    from labkit.course.kernel import execute_notebook

    _, student, _ = build_lab(FIXTURES / "labs" / "00_demo.py", tmp_path)
    cells = exercise_cells(student)
    # A student who got exercise 1 right, exercise 2 wrong and left exercise 3 alone.
    cells["00.scale"].source = (
        "def scale(x):\n"
        "    x = x.astype(np.float32)\n"
        "    return (x - x.min()) / (x.max() - x.min())\n"
    )
    cells[
        "00.count_positive"
    ].source = "def count_positive(masks):\n    return (masks > 0).sum()  # total, not per image\n"
    probe = student.cells[-1].copy()
    probe.cell_type, probe.id = "code", "probe"
    probe.update(outputs=[], execution_count=None)
    probe.source = (
        "import json\n"
        "print(json.dumps({k: v['status'] for k, v in lk.checks.RESULTS.items()}))\n"
        "print(lk.checks.SUBMITTED['00.count_positive'].__name__,"
        " lk.checks.SUBMITTED['00.count_positive'] is not count_positive)\n"
    )
    student.cells.append(probe)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    env["LABKIT_EXERCISE_MODULES"] = "demo_exercises"
    env.pop(checks.STRICT_ENV_VAR, None)
    execute_notebook(student, cwd=tmp_path, env=env, timeout=900)  # a hang guard only

    def text(cell):
        return "".join(o.get("text", "") for o in cell.outputs)

    check_cells = [c for c in student.cells if "lk.checks.check(" in c.source]
    outputs = [text(c) for c in check_cells]
    assert outputs[0].startswith("[PASS] Min-max scaling")
    assert outputs[1].startswith("[FAIL] Counting positive pixels")
    assert (
        "on 3 masks (4, 0 and 16 positive pixels): expected a numpy array of shape (3,), "
        "dtype int64, got a single numpy int64 value (20)" in outputs[1]
    )
    assert "From here on, `count_positive` is labkit's version, not yours" in outputs[1]
    assert outputs[2].startswith("[TODO] Dice coefficient (00.dice): not implemented yet")
    # The rest of the notebook ran on the fallbacks.
    use = next(c for c in student.cells if "record_result" in c.source)
    assert "Dice 0.917" in text(use)
    lines = text(student.cells[-1]).splitlines()
    assert json.loads(lines[0]) == {
        "00.scale": "pass",
        "00.count_positive": "fail",
        "00.dice": "stub",
    }
    assert lines[1] == "count_positive True"  # the student's own function is kept


def test_compare_zero_dim_tensors_reports_the_difference():
    # A scalar loss (0-dim tensor) that is wrong must give expected-vs-got, not crash.
    import torch

    from labkit.checks import compare

    message = compare(torch.tensor(0.25), torch.tensor(0.5))
    assert message is not None and "wrong values" in message
    assert compare(torch.tensor(0.5), torch.tensor(0.5)) is None
