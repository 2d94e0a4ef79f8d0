"""Labs 01-03: wrong answers, references and a student notebook in a real kernel.

* a typical wrong implementation of each exercise fails with a message that says what was
  expected and what came back;
* the references defined for students agree with labkit's metrics, losses and helpers;
* a student notebook with one right, one wrong and two untouched exercises runs to the
  end in a real kernel.

What every lab's exercises and notebooks share is tested in test_labs.py.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_trees import make_tree, subset_dir
from _labs import SOURCES, assert_check_fails, exercise_ids, exercise_namespace, wrong_ids
from torch import nn

import labkit.exercises  # noqa: F401  (registers the course's exercises)
from labkit import checks
from labkit.checks import EXERCISES, run_tests
from labkit.course.build import build_lab, exercise_cells
from labkit.data import CLASSES, SPLITS
from labkit.exercises import lab01, lab02, lab03

pytestmark = pytest.mark.usefixtures("fresh_records")


# ---------------------------------------------------------------------------- wrong answers
def _batch_minmax(x):  # min and max over the whole batch, not per image
    x = x.float()
    return (x - x.min()) / (x.max() - x.min())


def _nan_minmax(x):  # divides by zero on a constant image
    x = x.float()
    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)


def _count_everything(base):  # counts Thumbs.db and notes.txt too
    def n(folder):
        return len(os.listdir(folder)) if folder.is_dir() else 0

    return {s: {c: n(base / s / c / "images") for c in CLASSES} for s in SPLITS}


def _count_without_checking(base):  # crashes on a missing folder
    return {s: {c: len(list((base / s / c / "images").iterdir())) for c in CLASSES} for s in SPLITS}


class _NoPadDoubleConv(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU(),
        )  # fmt: skip


class _NoMiddleReluDoubleConv(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        )  # fmt: skip


def _unet3(forward):
    """lab 02's UNet3 (layers as given to students) with another forward."""
    ns = _exercise_namespace_cached("02")
    return type("WrongUNet3", (ns["UNet3"],), {"forward": forward})


def _swapped_skip_forward(self, x):
    e1 = self.enc1(x)
    e2 = self.enc2(self.pool(e1))
    e3 = self.enc3(self.pool(e2))
    b = self.bottleneck(self.pool(e3))
    d3 = self.dec3(torch.cat([e3, self.up3(b)], dim=1))  # skip first
    d2 = self.dec2(torch.cat([e2, self.up2(d3)], dim=1))
    d1 = self.dec1(torch.cat([e1, self.up1(d2)], dim=1))
    return self.head(d1)


def _no_pool_forward(self, x):
    e1 = self.enc1(x)
    e2 = self.enc2(e1)  # forgot to pool: the shapes no longer fit
    e3 = self.enc3(e2)
    b = self.bottleneck(e3)
    return self.head(self.dec1(torch.cat([self.up1(b), e1], dim=1)))


class _ReluBeforeAdd(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        )  # fmt: skip
        self.shortcut = (
            nn.Identity()
            if c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        )

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


class _AlwaysProjected(_ReluBeforeAdd):
    def __init__(self, c_in, c_out):
        super().__init__(c_in, c_out)
        del self.main[-1]
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.main(x) + self.shortcut(x))


def _plain_resunet3(in_channels=1, classes=1, base_width=64):
    """A U-Net whose encoder keeps DoubleConv: the residual blocks are missing."""
    from labkit.models import UNet

    return UNet(in_channels=in_channels, classes=classes, depth=3, base_width=base_width)


def _unclipped_losses(p, y):
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {"bce": float(bce.mean()), "mse": float(((p - y) ** 2).mean())}


_NS_CACHE: dict = {}


def _exercise_namespace_cached(lab):
    if lab not in _NS_CACHE:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            _NS_CACHE[lab] = exercise_namespace(lab, "solution", Path(tmp))
    return _NS_CACHE[lab]


WRONG = [
    ("01.minmax_scale", lambda: _batch_minmax,
     "on 2 uint8 images (values 20-199): wrong values"),
    ("01.minmax_scale", lambda: (lambda x: _nan_minmax(x).double()),
     "expected dtype torch.float32, got dtype torch.float64"),
    ("01.minmax_scale", lambda: _nan_minmax,
     "on a batch whose second image is constant (0.7 everywhere): wrong values"),
    ("01.one_hot", lambda: (lambda m: torch.cat([m.float(), 1 - m.float()], 1)),
     "wrong values"),
    ("01.one_hot", lambda: (lambda m: m.float()),
     "expected shape (2, 2, 4, 4), got shape (2, 1, 4, 4)"),
    ("01.count_images", lambda: _count_everything,
     "in the result['Train']['COVID-19']: expected 3, got 7"),
    ("01.count_images", lambda: _count_without_checking, "your function raised FileNotFoundError"),
    ("01.infection_fraction",
     lambda: (lambda inf, lung: inf.flatten(1).float().sum(1) / lung.flatten(1).float().sum(1)),
     "wrong values"),
    ("02.DoubleConv", lambda: _NoPadDoubleConv, "expected (2, 8, 12, 12), got (2, 8, 8, 8)"),
    ("02.DoubleConv", lambda: _NoMiddleReluDoubleConv,
     "the same weights in yours and labkit's: wrong values"),
    ("02.DoubleConv", lambda: (lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1)),
     "expected these layers to run: 2 x 3x3 convolution, 2 x batch norm; yours runs: "
     "1 x 3x3 convolution"),
    ("02.UNet3", lambda: _unet3(_swapped_skip_forward),
     "the same weights in yours and labkit's: wrong values"),
    ("02.UNet3", lambda: _unet3(_no_pool_forward), "your function raised RuntimeError"),
    ("02.dice", lambda: (lambda p, t: float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))),
     "on an empty true mask and 8 predicted pixels: expected nan, got 0"),
    ("02.iou", lambda: lab02.dice, "on two masks of 8 pixels sharing 4: expected 0.3333, got 0.5"),
    ("03.ResidualBlock", lambda: _ReluBeforeAdd,
     "the output of ResidualBlock(3, 8) on a 2x3x12x12 input, the same weights in yours and "
     "labkit's: wrong values"),
    ("03.ResidualBlock", lambda: _AlwaysProjected,
     "the output of ResidualBlock(8, 8) on a 2x8x12x12 input, the same weights in yours and "
     "labkit's: expected these layers to run: 2 x 3x3 convolution, 2 x batch norm; "
     "yours runs: 1 x 1x1 convolution"),
    ("03.ResUNet3", lambda: _plain_resunet3, "expected these layers to run: 5 x 1x1 convolution, 14 x 3x3 convolution, 18 x batch norm, "
     "3 x transposed convolution; yours runs: 1 x 1x1 convolution"),
    ("03.bce_and_mse", lambda: _unclipped_losses, "in the result['bce']: expected 4.203, got nan"),
    ("03.bce_and_mse", lambda: (lambda p, y: {"bce": 0.0, "mse": 0.0}), "in the result['bce']"),
]  # fmt: skip


@pytest.mark.parametrize("exercise_id, make_wrong, message", WRONG, ids=wrong_ids(WRONG))
def test_wrong_implementation_fails_with_expected_vs_got(exercise_id, make_wrong, message, capsys):
    assert_check_fails(exercise_id, make_wrong(), message, capsys)


def test_every_exercise_has_a_wrong_answer_test():
    assert {w[0] for w in WRONG} == exercise_ids("01", "02", "03")


# ---------------------------------------------------------------------------- references
def test_infection_fraction_agrees_with_labkit_infection_area(tmp_path, monkeypatch):
    from labkit.data import infection_area, load_split

    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    root = make_tree(tmp_path / "tree", per_class=3, size=16)
    data = load_split(root, "Train", size=16, progress=False)
    fraction = lab01.infection_fraction(data.infection, data.lung)
    assert fraction.shape == (len(data),) and fraction.dtype == torch.float32
    area = infection_area(data)
    for cls, summary in area.items():
        mine = fraction[[c == cls for c in data.classes]].mean().item()
        assert mine == pytest.approx(summary["lung_fraction"], abs=1e-6)
    assert area["COVID-19"]["lung_fraction"] > 0
    # and the reference count agrees with the files written
    counts = checks.resolve("labkit.data.explore:count_images")(subset_dir(root))
    assert counts["Test"] == {"COVID-19": 3, "Non-COVID": 3, "Normal": 3}


def test_count_case_tree_is_what_its_label_says():
    (case,) = lab01.count_cases()
    base = case.args[0]
    assert sorted(p.name for p in (base / "Train" / "COVID-19" / "images").iterdir()) == [
        "Thumbs.db", "img (1).png", "img (2).png", "img (3).png", "notes.png.txt", "notes.txt",
        "scan.jpg",
    ]  # fmt: skip
    assert not (base / "Val" / "Normal" / "images").exists()
    counts = EXERCISES["01.count_images"].reference_impl()(base)
    assert counts["Train"]["COVID-19"] == 3 and counts["Val"]["Normal"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_dice_and_iou_match_a_numpy_oracle(seed):
    rng = np.random.default_rng(seed)
    p = rng.random((9, 7)) > 0.6
    t = rng.random((9, 7)) > 0.7
    inter, union = (p & t).sum(), (p | t).sum()
    assert lab02.dice(p, t) == pytest.approx(2 * inter / (p.sum() + t.sum()))
    assert lab02.iou(p, t) == pytest.approx(inter / union)
    assert lab02.dice(p, t) == pytest.approx(2 * lab02.iou(p, t) / (1 + lab02.iou(p, t)))
    empty = np.zeros_like(t)
    assert math.isnan(lab02.dice(p, empty)) and math.isnan(lab02.iou(empty, empty))
    assert lab02.dice(empty, t) == 0.0


def test_bce_and_mse_agree_with_labkit_losses():
    from labkit.losses import bce_loss, mse_loss

    g = torch.Generator().manual_seed(0)
    prob = 0.01 + 0.98 * torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    truth = (torch.rand(3, 1, 8, 8, generator=g) > 0.7).double()
    logits = torch.log(prob / (1 - prob))  # sigmoid(logits) == prob
    mine = lab03.bce_and_mse(prob.numpy(), truth.numpy())
    assert mine["bce"] == pytest.approx(bce_loss(logits, truth).item(), rel=1e-6)
    assert mine["mse"] == pytest.approx(mse_loss(logits, truth).item(), rel=1e-6)
    # the same predictions, two different numbers; pointwise -log q >= 1 - q >= (1 - q)^2
    # with q the probability given to the true label, so BCE >= MSE for any predictions
    assert mine["bce"] > mine["mse"]


def test_block_checks_accept_an_equivalent_module_written_differently():
    class Block(nn.Module):  # attributes in another order, biases on, shortcut computed first
        def __init__(self, c_in, c_out):
            super().__init__()
            self.proj = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
            self.proj_bn = None if c_in == c_out else nn.BatchNorm2d(c_out)
            self.b2, self.b1 = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)
            self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
            self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)

        def forward(self, x):
            skip = x if self.proj is None else self.proj_bn(self.proj(x))
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + skip)

    assert run_tests(EXERCISES["03.ResidualBlock"], Block).status == "pass"


# ---------------------------------------------------------------------------- a real kernel
@pytest.mark.slow
def test_student_notebook_runs_with_one_right_one_wrong_and_stubs(tmp_path):
    from labkit.course.kernel import execute_notebook

    _, student, _ = build_lab(SOURCES["01"], tmp_path)
    cells = exercise_cells(student)
    cells[
        "01.one_hot"
    ].source = "def one_hot(mask):\n    m = mask.float()\n    return torch.cat([1 - m, m], dim=1)\n"
    cells[
        "01.minmax_scale"
    ].source = (
        "def minmax_scale(x):\n    x = x.float()\n    return (x - x.min()) / (x.max() - x.min())\n"
    )
    env = dict(os.environ, LABKIT_PROFILE="smoke")
    env.pop(checks.STRICT_ENV_VAR, None)
    env.pop("LABKIT_RESULTS", None)
    execute_notebook(student, cwd=tmp_path, env=env, timeout=1800)  # a hang guard only

    def text(cell):
        return "".join(o.get("text", "") for o in cell.get("outputs", []))

    verdicts = {
        ex_id: text(next(c for c in student.cells if f'check("{ex_id}"' in c.source))
        for ex_id in cells
    }
    assert verdicts["01.one_hot"].startswith("[PASS] One-hot masks")
    assert verdicts["01.minmax_scale"].startswith(
        "[FAIL] Min-max scaling (01.minmax_scale): on 2 uint8 images (values 20-199)"
    )
    assert verdicts["01.count_images"].startswith("[TODO] Counting images per split and class")
    assert verdicts["01.infection_fraction"].startswith("[TODO] Infected fraction of the lung")
    assert "1 of 4 exercise(s) pass with your own code" in text(student.cells[-1])
