"""One contract for students and grader, and hints that teach (issue 15, items 14-15).

* every kind of input a hidden test of ``labkit grade`` feeds an exercise (a dtype, 0/255
  masks, several channels) is also fed by the notebook's own check, so a function that
  gets [PASS] in the notebook is not failed by the grader for an input it was never shown;
* functions that are right only for the inputs the notebook used to try (a Dice written
  by multiplication, right for bool and 0/1 masks, wrong for 0/255) now fail the
  notebook's check;
* no hint a check prints contains a line of the lab's reference solution, and every
  exercise has a conceptual hint and a more specific one for a later failure.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _labs import SOURCES, assert_check_fails, wrong_ids
from torch import nn

import labkit.exercises  # noqa: F401  (registers the course's exercises)
from labkit.checks import EXERCISES, Case, get_exercise
from labkit.exercises import lab04
from labkit.grade.hidden import HIDDEN, load_hidden_tests

pytestmark = pytest.mark.usefixtures("fresh_records")


# ---------------------------------------------------------------------------- input kinds
def _kind(value) -> tuple | None:
    """What kind of input ``value`` is, in the ways that change a student's result."""
    if isinstance(value, (list, tuple)):
        return ("sequence", tuple(_kind(v) for v in value[:1]))
    if torch.is_tensor(value):
        dtype, array = str(value.dtype), value.detach().numpy()
    elif isinstance(value, np.ndarray):
        dtype, array = str(value.dtype), value
    else:
        return None  # paths, loss functions, ...: no dtype to promise
    values = set(np.unique(array).tolist()) if array.size <= 4096 else {None}
    if dtype != "bool" and values <= {0, 255} and 255 in values:
        scale = "0/255"
    else:
        scale = "any"
    channels = "several channels" if array.ndim == 4 and array.shape[1] > 1 else ""
    return (type(value).__name__, dtype, scale, channels)


def _kinds(cases: list[Case]) -> set[tuple]:
    kinds = set()
    for case in cases:
        for i, arg in enumerate(case.args):
            if (k := _kind(arg)) is not None:
                kinds.add((i, k))
    return kinds


def _hidden_cases(exercise_id: str) -> list[Case]:
    load_hidden_tests(exercise_id.split(".")[0])
    cases = []
    for factory in HIDDEN.get(exercise_id, []):
        cases += [t for t in factory.make() if isinstance(t, Case)]
    return cases


CASE_EXERCISES = sorted(i for i, e in EXERCISES.items() if e.cases is not None and i[:2] <= "06")


@pytest.mark.parametrize("exercise_id", CASE_EXERCISES)
def test_every_input_kind_a_hidden_test_uses_is_tried_by_the_notebooks_check(exercise_id):
    hidden = _kinds(_hidden_cases(exercise_id))
    public = _kinds(get_exercise(exercise_id).make_cases())
    missing = sorted(hidden - public, key=str)
    assert not missing, f"{exercise_id}: the grader feeds {missing}, the notebook never does"


# ---------------------------------------------------------------------------- wrong answers
def _dice_by_multiplication(pred, truth):  # right for bool and 0/1 masks only
    if truth.sum() == 0:
        return float("nan")
    return float(2 * (pred * truth).sum() / (pred.sum() + truth.sum()))


def _iou_by_arithmetic(pred, truth):  # right for bool and 0/1 masks only
    if truth.sum() == 0:
        return float("nan")
    inter = (pred * truth).sum()
    return float(inter / (pred.sum() + truth.sum() - inter))


def _minmax_per_channel(x):  # one min and max per channel, not per image
    x = x.float()
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def _count_names_containing_png(base):
    from labkit.data import CLASSES, SPLITS

    out = {}
    for split in SPLITS:
        out[split] = {}
        for cls in CLASSES:
            folder = base / split / cls / "images"
            out[split][cls] = (
                sum(".png" in p.name for p in folder.iterdir()) if folder.is_dir() else 0
            )
    return out


def _unet3_for_one_channel(in_channels=1, classes=1, base_width=64):
    from labkit.models import UNet

    return UNet(in_channels=1, classes=classes, depth=3, base_width=base_width)


def _unfreeze_everything_then_freeze(model, trainable):  # also unfreezes the decoder's choice
    model.requires_grad_(True)
    lab04.set_encoder_trainable(model, trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _detached_focal(logits, target, gamma=2.0):  # the right value, cut off from the logits
    return torch.tensor(float(lab04_focal(logits, target, gamma=gamma)))


def lab04_focal(logits, target, gamma=2.0):
    from labkit.losses import focal_loss

    return focal_loss(logits, target, gamma=gamma)


class _RoundedGate(nn.Module):  # round(C / 2) hidden units: right for even C only
    def __init__(self, channels):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, round(channels / 2 + 0.1)), None
        self.fc2 = nn.Linear(self.fc1.out_features, 1)

    def forward(self, f):
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(f.mean((2, 3))))))
        return g[:, :, None, None]


def _detached_aux_heads(outputs, target, base_loss, final_weight=0.5):
    if torch.is_tensor(outputs):
        return base_loss(outputs, target)
    final, *aux = outputs
    if not aux:
        return base_loss(final, target)
    aux_loss = torch.stack([base_loss(a.detach(), target) for a in aux]).mean()
    return final_weight * base_loss(final, target) + (1 - final_weight) * aux_loss


# Each of these got [PASS] from the notebook's check before issue 15 and 0 from the grader.
WRONG = [
    ("01.minmax_scale", lambda: _minmax_per_channel,
     "on 2 float images with 3 channels (one min and max per image): wrong values"),
    ("01.one_hot", lambda: (lambda m: torch.cat([1 - m, m], 1).to(
        torch.promote_types(m.dtype, torch.float32))),
     "on an empty float64 mask: expected dtype torch.float32, got dtype torch.float64"),
    ("01.count_images", lambda: _count_names_containing_png,
     "in the result['Train']['COVID-19']: expected 3, got 4"),
    ("02.UNet3", lambda: _unet3_for_one_channel,
     "your function raised ValueError: unet: input has 3 channels"),
    ("02.dice", lambda: _dice_by_multiplication,
     "on 0/255 uint8 masks of shape (1, 4, 4) (as read from a PNG), sharing 4 pixels"),
    ("02.iou", lambda: _iou_by_arithmetic,
     "on 0/255 uint8 masks of shape (1, 4, 4) (as read from a PNG), sharing 4 pixels"),
    ("04.set_encoder_trainable", lambda: _unfreeze_everything_then_freeze,
     "set_encoder_trainable(model, False) should return 1,248,738 trainable parameters, got "
     "an int 2244066"),
    ("04.focal_loss", lambda: _detached_focal, "no gradient reaches the logits"),
    ("05.combined_loss", lambda: (lambda lg, t: _detached_focal(lg, t) * 0 + torch.tensor(
        float(labkit.exercises.lab05.combined_loss(lg, t)))), "no gradient reaches the logits"),
    ("05.constrain_to_lung", lambda: (lambda probs, lung: probs * lung),
     "on float64 probabilities and a 0/255 uint8 lung mask (as read from a PNG): wrong values"),
    ("05.fp_outside_lung",
     lambda: (lambda p, t, lung: (p.int() * (1 - t.int()) * (1 - lung.int())).flatten(1).sum(1).long()),
     "on the same as 0/255 uint8 masks (as read from a PNG): wrong values"),
    ("06.ContrastGate", lambda: _RoundedGate,
     "expected these fully connected layers, in this order: FC 3 -> 1, FC 1 -> 1; yours runs: "
     "FC 3 -> 2, FC 2 -> 1"),
    ("06.deep_supervision_loss", lambda: _detached_aux_heads,
     "no gradient reaches output no. 2 of the list"),
]  # fmt: skip


@pytest.mark.parametrize("exercise_id, make_wrong, message", WRONG, ids=wrong_ids(WRONG))
def test_a_function_right_only_for_the_old_inputs_now_fails_the_notebooks_check(
    exercise_id, make_wrong, message, capsys
):
    assert_check_fails(exercise_id, make_wrong(), message, capsys)


# ---------------------------------------------------------------------------- hints
def _solution_lines(source: Path) -> dict[str, list[str]]:
    """Exercise id -> the code lines of its solution block in the lab's source."""
    text = source.read_text()
    out: dict[str, list[str]] = {}
    for cell in text.split("\n# %%"):
        m = re.search(r'exercise="(\d\d\.\w+)"', cell.splitlines()[0] if cell else "")
        if not m:
            continue
        block = cell.split("### BEGIN SOLUTION", 1)[-1].split("### END SOLUTION", 1)[0]
        lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
        out[m[1]] = [line for line in lines if len(line) >= 12]
    return out


SOLUTIONS = {k: v for lab in SOURCES.values() for k, v in _solution_lines(lab).items()}


@pytest.mark.parametrize("exercise_id", sorted(SOLUTIONS))
def test_hints_teach_in_steps_and_never_print_the_solution(exercise_id):
    ex = get_exercise(exercise_id)
    assert ex.hint and ex.hints, f"{exercise_id}: needs a conceptual hint and a later one"
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    for hint in (ex.hint, *ex.hints):
        for line in SOLUTIONS[exercise_id]:
            assert squash(line) not in squash(hint), f"{exercise_id}: hint contains {line!r}"


def test_the_solution_lines_are_found():  # the test above would pass vacuously otherwise
    assert len(SOLUTIONS) == 25
    assert "return float((pred & truth).sum() / (pred | truth).sum())" in SOLUTIONS["02.iou"]


def _strings(path: Path) -> list[str]:
    """Every string in a module (f-strings by their fixed parts): what a check can print."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value for v in node.values if isinstance(v, ast.Constant)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
    return out


@pytest.mark.parametrize("lab", sorted(SOURCES))
def test_no_message_of_a_labs_checks_holds_a_line_of_its_solution(lab):
    module = Path(labkit.exercises.__file__).parent / f"lab{lab}.py"
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    lines = [line for k, v in SOLUTIONS.items() if k.startswith(lab) for line in v]
    for text in _strings(module):
        for line in lines:
            assert squash(line) not in squash(text), f"lab{lab}.py prints {line!r}"
