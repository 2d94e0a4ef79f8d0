"""Lab 07: each exercise's reference passes its check, a typical wrong answer fails it with
a message saying what was expected, the notebook's own solutions pass, and the hidden tests
tell the reference from the wrong answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _labs import assert_check_fails
from torch import nn

import labkit as lk
from labkit import checks
from labkit.checks import get_exercise
from labkit.checks.probes import judge_probe
from labkit.course.build import build_lab, exercise_cells
from labkit.exercises import lab07  # noqa: F401  (registers lab 07's exercises)
from labkit.grade.hidden import Probe, exercise_tests, load_hidden_tests

pytestmark = pytest.mark.usefixtures("fresh_records")
SOURCE = Path(__file__).resolve().parents[2] / "solutions" / "07_ct_volumes.py"
IDS = ("07.window_ct", "07.sample_patch_starts", "07.subject_dice", "07.ContrastGate3d")


def _window_without_clip(volume, convention):
    v = torch.as_tensor(volume).float()
    return (v + 1250) / 1500 if convention == "hu" else v / 255


def _uniform_sampler(shape, positives, patch, n, positive_share=0.5, generator=None):
    high = torch.tensor(shape) - torch.tensor(patch) + 1
    return (torch.rand(n, 3, generator=generator) * high).long()


def _dice_of_empty_is_zero(pred, truth):
    p, t = torch.as_tensor(pred).bool(), torch.as_tensor(truth).bool()
    return float(2 * (p & t).sum() / max(1, int(p.sum() + t.sum())))


class _SEGate3d(nn.Module):  # one gate per channel: the SE gate, not the CE gate
    def __init__(self, channels):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, channels // 2), nn.Linear(channels // 2, channels)

    def forward(self, f):
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(f.mean((2, 3, 4))))))
        return g[:, :, None, None, None]


WRONG = {
    "07.window_ct": (_window_without_clip, "expected"),
    "07.sample_patch_starts": (_uniform_sampler, "patches to contain infection"),
    "07.subject_dice": (_dice_of_empty_is_zero, "expected nan, got 0"),
    "07.ContrastGate3d": (_SEGate3d, "FC 8 -> 4, FC 4 -> 1; yours runs: FC 8 -> 4, FC 4 -> 8"),
}


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_reference_passes_and_a_typical_wrong_answer_fails(exercise_id, capsys):
    ref = get_exercise(exercise_id).reference_impl()
    assert checks.check(exercise_id, ref) is ref
    assert checks.RESULTS[exercise_id]["status"] == "pass"
    assert capsys.readouterr().out.startswith("[PASS]")
    wrong, message = WRONG[exercise_id]
    assert_check_fails(exercise_id, wrong, message, capsys)


def test_the_notebooks_own_solutions_pass_their_checks(capsys):
    _, _, nb = build_lab(SOURCE)  # the solution notebook
    cells = exercise_cells(nb)
    assert sorted(cells) == sorted(IDS)
    for exercise_id in IDS:  # the cell defines the function; the next cell checks it
        namespace: dict = {"torch": torch, "nn": nn, "lk": lk}
        exec(cells[exercise_id].source, namespace)
        fn = namespace[get_exercise(exercise_id).function]
        assert checks.check(exercise_id, fn) is fn, capsys.readouterr().out


def _observe(test, obj):
    try:
        return ("ok", test.run(obj))
    except Exception as err:  # an exception is part of the observation
        return ("raised", type(err).__name__)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, equal_nan=True)
    return a == b


@pytest.mark.parametrize("exercise_id", IDS)
def test_a_hidden_test_tells_the_wrong_answer_from_the_reference(exercise_id):
    load_hidden_tests("07")
    ex = get_exercise(exercise_id)
    ref, (wrong, _) = ex.reference_impl(), WRONG[exercise_id]
    probes = [t for t in exercise_tests(ex) if isinstance(t, Probe) and not t.verdict]
    cases = [t for t in exercise_tests(ex) if not isinstance(t, Probe)]
    assert probes or cases, f"{exercise_id} has no hidden tests"
    differ = []
    for probe in probes:
        if probe.expect is not None:  # judged from the raw output where the reference lives
            got = _observe(probe, wrong)
            if got[0] != "ok":
                differ.append(True)
                continue
            expected, judged = judge_probe(probe, ref, {"kind": "value", "value": got[1]})
            differ.append(
                judged["kind"] != "value" or not _same(expected["value"], judged["value"])
            )
            continue
        expected, got = _observe(probe, ref), _observe(probe, wrong)
        assert expected[0] == "ok" or exercise_id == "07.sample_patch_starts", expected
        differ.append(not (expected[0] == got[0] and _same(expected[1], got[1])))
    for case in cases:  # cases are compared by the grader: the wrong answer must differ on one
        try:
            differ.append(
                not _same(ref(*case.args, **case.kwargs), wrong(*case.args, **case.kwargs))
            )
        except Exception:
            differ.append(True)
    assert any(differ)
