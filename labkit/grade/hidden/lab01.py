"""Hidden tests of lab 01 (data exploration): other shapes and dtypes, constant and empty
images, empty lungs, folder trees with missing folders and stray files.

(A tree needs at least one split folder: labkit's ``count_images`` refuses a folder with no
COVID-QU-Ex layout at all, so that is not a case here.)"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from labkit.checks import Case
from labkit.grade.hidden import hidden, run_rng, run_seed

_TREES: list[str] = []
atexit.register(lambda: [shutil.rmtree(t, ignore_errors=True) for t in _TREES])


def _tree(counts: dict[tuple[str, str], int], extras: dict[tuple[str, str], list[str]]) -> Path:
    base = Path(tempfile.mkdtemp(prefix="labkit-hidden01-"))
    _TREES.append(str(base))
    for (split, cls), n in counts.items():
        folder = base / split / cls / "images"
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"img_{i}.png").touch()
    for (split, cls), names in extras.items():
        folder = base / split / cls / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / name).touch()
    return base


@hidden("01.count_images")
def count_images_tests():
    sparse = _tree(
        {("Val", "Normal"): 4, ("Test", "COVID-19"): 1},
        {("Val", "Normal"): [".DS_Store", "scan.jpg", "notes.png.txt"]},
    )
    rng = run_rng("01 count_images")  # the run's secret: counts nobody can tabulate
    splits, classes = ("Train", "Val", "Test"), ("COVID-19", "Non-COVID", "Normal")
    drawn = {
        (sp, c): int(rng.integers(0, 9)) for sp in splits for c in classes if rng.random() < 0.6
    }
    drawn = drawn or {("Train", "Normal"): 3}
    return [
        Case((_tree(drawn, {}),), label="a tree with random folders and numbers of PNGs"),
        Case(
            (_tree({("Train", "Normal"): 2}, {}),), label="a tree with only Train/Normal (2 PNGs)"
        ),
        Case(
            (sparse,),
            label="a tree with only Val/Normal (4 PNGs and 3 other files) and Test/COVID-19",
        ),
    ]


@hidden("01.infection_fraction")
def infection_fraction_tests():
    g = torch.Generator().manual_seed(run_seed("01 5"))
    lung = (torch.rand(5, 1, 3, 7, generator=g) > 0.3).to(torch.uint8)
    infection = (torch.rand(5, 1, 3, 7, generator=g) > 0.6).to(torch.uint8)
    no_lungs = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    outside = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    outside[0, 0, 0] = 1  # infection only in row 0, the lung only in row 3
    lung_row3 = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    lung_row3[0, 0, 3] = 1
    return [
        Case((infection, lung), label="5 random masks of shape (1, 3, 7)"),
        Case((no_lungs, no_lungs), label="two images without any lung pixel"),
        Case((outside, lung_row3), label="infection only outside the lung"),
        Case((infection.float(), lung.float()), label="float 0./1. masks"),
    ]


@hidden("01.minmax_scale")
def minmax_scale_tests():
    g = torch.Generator().manual_seed(run_seed("01 4"))
    black = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    full = torch.tensor([[[[0, 255], [128, 64]]]], dtype=torch.uint8)
    return [
        Case((black,), label="two all-black uint8 images (constant)"),
        Case((full,), label="one uint8 image spanning 0-255"),
        Case(
            (torch.randn(2, 3, 4, 5, generator=g) * 10 - 3,),
            label="2 float images with 3 channels (one min and max per image, over all channels)",
        ),
        Case((torch.randn(1, 1, 2, 2, generator=g).double(),), label="a float64 image"),
    ]


@hidden("01.one_hot")
def one_hot_tests():
    g = torch.Generator().manual_seed(run_seed("01 6"))
    return [
        Case((torch.zeros(2, 1, 3, 3, dtype=torch.uint8),), label="two empty uint8 masks"),
        Case(
            (torch.ones(1, 1, 2, 5, dtype=torch.uint8),), label="a 2x5 mask that is all infection"
        ),
        Case(
            ((torch.rand(3, 1, 5, 7, generator=g) > 0.5).double(),),
            label="3 float64 0/1 masks of shape (1, 5, 7)",
        ),
    ]
