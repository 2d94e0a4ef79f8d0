"""The reference of a *class* exercise is absent from the student's process (issue 20, item 0).

Lab 02's ``DoubleConv`` and ``UNet3`` are ``nn.Module`` classes; lab 02's ``dice`` has a
library equivalent (``labkit.metrics.dice``). One grading run of the real lab 02 (hidden
tests only) beside the solution: each hostile notebook reaches for labkit's class from the
exercise cell's definitions, in the ways that found a merely *blocked* reference, or lets
the weights of its ``__init__`` hide a wrong ``forward``.
"""

from __future__ import annotations

import pytest
from _grading import REPO, edited, write

from labkit.course.build import build_lab, find_labs
from labkit.grade import Options, grade

HEADER = "import torch\nfrom torch import nn\n"
RELOAD = (
    HEADER
    + """\
import importlib
import labkit.models.blocks
DoubleConv = importlib.reload(labkit.models.blocks).DoubleConv
"""
)
GETSOURCE = (
    HEADER
    + """\
import inspect
import labkit.models.blocks as _b
_ns = {}
_ = exec(inspect.getsource(_b.DoubleConv).replace("class DoubleConv", "class _Mine"), vars(_b), _ns)
DoubleConv = _ns["_Mine"]
"""
)
SUBCLASSES = (
    HEADER
    + """\
def _all(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all(sub)
_found = [c for c in _all(nn.Module) if c.__name__ == "DoubleConv" and "labkit" in c.__module__]
DoubleConv = _found[0] if _found else None
"""
)
GC_FIND = (
    HEADER
    + """\
import gc
_found = [o for o in gc.get_objects() if isinstance(o, type) and o.__name__ == "DoubleConv"
          and o.__module__.startswith("labkit")]
DoubleConv = _found[-1] if _found else None
"""
)
LIBRARY = (
    HEADER
    + """\
from labkit.models.blocks import ConvBNReLU
class DoubleConv(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels))
"""
)
# The right layers, but no ReLU in the middle; its __init__ zeroes every convolution, so
# that with its own weights the missing ReLU would change nothing.
ZERO_WEIGHTS = (
    HEADER
    + """\
class DoubleConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(out_channels)
        self.c2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(out_channels)
        for c in (self.c1, self.c2):
            nn.init.zeros_(c.weight)

    def forward(self, x):
        return torch.relu(self.b2(self.c2(self.b1(self.c1(x)))))
"""
)
UNET_LIBRARY = (
    HEADER
    + """\
from labkit.models.unet import UNet
class UNet3(nn.Module):
    def __init__(self, in_channels=1, classes=1, base_width=64):
        super().__init__()
        self.net = UNet(in_channels, classes, depth=3, base_width=base_width)

    def forward(self, x):
        return self.net(x)
"""
)
DICE_LIBRARY = """\
import numpy as np
import torch
from labkit import metrics
def dice(pred, truth):
    p = torch.from_numpy(np.asarray(pred).astype(bool)).reshape(1, 1, -1, 1)
    t = torch.from_numpy(np.asarray(truth).astype(bool)).reshape(1, 1, -1, 1)
    return float(metrics.dice(*metrics.confusion_counts(p, t))[0])
"""
# Red team 3: labkit's U-Net parts one level down (A2), and Dice as one minus labkit's soft
# Dice loss on saturated logits (A4).
UNET_PARTS = (
    HEADER
    + """\
from labkit.models.blocks import DoubleConv, UpBlock
class UNet3(nn.Module):
    def __init__(self, in_channels=1, classes=1, base_width=64):
        super().__init__()
        w = base_width
        self.downs = nn.ModuleList(
            [DoubleConv(a, b) for a, b in [(in_channels, w), (w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)]]
        )
        self.ups = nn.ModuleList([UpBlock(8 * w, 4 * w, 4 * w), UpBlock(4 * w, 2 * w, 2 * w), UpBlock(2 * w, w, w)])
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)
"""
)
DICE_LOSS = """\
import numpy as np
import torch
from labkit.losses.functional import dice_loss
def dice(pred, truth):
    t = torch.from_numpy(np.asarray(truth) > 0).float().reshape(1, 1, -1, 1)
    if not t.any():
        return float("nan")
    z = torch.from_numpy(np.asarray(pred) > 0).float().reshape(1, 1, -1, 1) * 400 - 200
    return float(1 - dice_loss(z, t, smooth=0.0))
"""
# Red team 4: a direct part of labkit's Dice, kept because lab 02's IoU (named absent for
# Dice) was kept as "another exercise's reference" with everything it is built from.
DICE_COUNTS = """\
from labkit.exercises.lab02 import _counts
def dice(pred, truth):
    tp, fp, fn, tn = (int(v[0]) for v in _counts(pred, truth))
    return float("nan") if tp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
"""
ATTACKS = {
    "dice_counts": ("02.dice", DICE_COUNTS),
    "unet_parts": ("02.UNet3", UNET_PARTS),
    "dice_loss": ("02.dice", DICE_LOSS),
    "reload": ("02.DoubleConv", RELOAD),
    "getsource": ("02.DoubleConv", GETSOURCE),
    "subclasses": ("02.DoubleConv", SUBCLASSES),
    "gc_find": ("02.DoubleConv", GC_FIND),
    "library": ("02.DoubleConv", LIBRARY),
    "zero_weights": ("02.DoubleConv", ZERO_WEIGHTS),
    "unet_library": ("02.UNet3", UNET_LIBRARY),
    "dice_library": ("02.dice", DICE_LIBRARY),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("absent")
    (source,) = find_labs(REPO / "solutions", ["02"])
    _, _, solution = build_lab(source, base / "build")
    write(base / "subs", "honest.ipynb", solution)
    for name, (exercise_id, cell) in ATTACKS.items():
        write(base / "subs", f"{name}.ipynb", edited(solution, {exercise_id: cell}))
    options = Options(source=REPO / "solutions", jobs=2, run=False, progress=False)
    return {r.student: r for r in grade(base / "subs", "02", base / "out", options)}


def _status(result, exercise_id: str) -> str:
    return next(e for e in result.exercises if e.id == exercise_id).status


def test_the_solution_passes_every_exercise(graded):
    assert {e.status for e in graded["honest"].exercises} == {"pass"}, graded["honest"].exercises


@pytest.mark.parametrize("student", sorted(ATTACKS))
def test_labkits_class_or_its_library_equivalent_cannot_be_reached(graded, student):
    exercise_id = ATTACKS[student][0]
    result = graded[student]
    assert _status(result, exercise_id) != "pass", result.exercises
    # the other exercises are the solution's own: only the attacked one is lost
    others = [e for e in result.exercises if e.id != exercise_id]
    assert all(e.status == "pass" for e in others), others
