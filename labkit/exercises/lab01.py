"""Lab 01 (data exploration) exercises: min-max scaling, one-hot masks, counting images on
disk, and the infected fraction of the lung.

References are labkit's own implementations where one has the student's signature
(``labkit.data.preprocess``, ``labkit.data.explore``); ``infection_fraction`` is defined here
and tested against ``labkit.data.explore.infection_area`` in tests/exercises/test_labs_01_03.py.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from labkit.checks import Case, Exercise, register


def infection_fraction(infection: torch.Tensor, lung: torch.Tensor) -> torch.Tensor:
    """Fraction of each image's lung pixels that are infected; 0 for an empty lung mask.

    Shape:
        infection, lung ``(N, 1, H, W)`` {0, 1} -> ``(N,)`` float32.
    """
    inf = infection.flatten(1).float()  # (N, H*W)
    lng = lung.flatten(1).float()
    return (inf * lng).sum(1) / lng.sum(1).clamp_min(1)  # infected lung pixels / lung pixels


# ---------------------------------------------------------------------------- cases
def minmax_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    uint8 = torch.randint(20, 200, (2, 1, 4, 4), generator=g, dtype=torch.uint8)
    spread = torch.stack(
        [torch.linspace(0.2, 0.4, 25), torch.linspace(-3.0, 5.0, 25), torch.linspace(0, 1, 25)]
    ).reshape(3, 1, 5, 5)  # three images with different ranges: min/max must be per image
    constant = torch.rand(2, 1, 3, 3, generator=g)
    constant[1] = 0.7  # a constant image: max == min
    rgb = torch.randn(2, 3, 4, 5, generator=g) * 4  # one min and max per image, all channels
    return [
        Case((uint8,), label="2 uint8 images (values 20-199)"),
        Case((spread,), label="3 float images with different ranges"),
        Case((constant,), label="a batch whose second image is constant (0.7 everywhere)"),
        Case((rgb,), label="2 float images with 3 channels (one min and max per image)"),
        Case((torch.rand(1, 1, 2, 3, generator=g).double(),), label="a float64 image"),
    ]


def one_hot_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case(
            ((torch.rand(2, 1, 4, 4, generator=g) > 0.7).to(torch.uint8),),
            label="2 uint8 masks of shape (1, 4, 4)",
        ),
        Case(
            (torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]]),), label="one float mask [[0, 1], [1, 1]]"
        ),
        Case((torch.zeros(1, 1, 2, 3, dtype=torch.float64),), label="an empty float64 mask"),
    ]


_TREES: list[str] = []


def _remove_trees() -> None:
    for folder in _TREES:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_trees)


def tiny_tree() -> Path:
    """A small COVID-QU-Ex-like folder (empty PNG files are enough to count) in a temp folder.

    Train/COVID-19 has 3 PNGs plus four files that are not PNGs (one named
    ``notes.png.txt``: the name contains ".png" but does not end in it); Val/Normal has no ``images``
    folder at all (it must count 0); other folders hold 0-2 PNGs.
    """
    base = Path(tempfile.mkdtemp(prefix="labkit-ex01-"))
    _TREES.append(str(base))
    counts = {
        ("Train", "COVID-19"): 3,
        ("Train", "Non-COVID"): 2,
        ("Train", "Normal"): 1,
        ("Val", "COVID-19"): 1,
        ("Val", "Non-COVID"): 0,
        ("Test", "COVID-19"): 2,
        ("Test", "Non-COVID"): 1,
        ("Test", "Normal"): 1,
    }
    for (split, cls), n in counts.items():
        folder = base / split / cls / "images"
        folder.mkdir(parents=True)
        (base / split / cls / "lung masks").mkdir()
        for i in range(n):
            (folder / f"img ({i + 1}).png").touch()
            (base / split / cls / "lung masks" / f"img ({i + 1}).png").touch()
    (base / "Train" / "COVID-19" / "images" / "Thumbs.db").touch()
    for name in ("notes.txt", "notes.png.txt", "scan.jpg"):
        (base / "Train" / "COVID-19" / "images" / name).touch()
    (base / "Val" / "Normal").mkdir(parents=True)  # no images folder: 0 images
    return base


def count_cases() -> list[Case]:
    return [
        Case(
            (tiny_tree(),),
            label="a small folder tree (Thumbs.db, notes.txt, notes.png.txt and scan.jpg "
            "beside 3 PNGs in Train/COVID-19/images; no Val/Normal/images folder)",
        )
    ]


def fraction_cases() -> list[Case]:
    lung = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    inf = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    lung[0, 0, :, :2] = 1  # 8 lung pixels, 4 of them infected: 0.5
    inf[0, 0, :2, :2] = 1
    # image 1: no lung at all (and no infection): 0, not a division by zero
    lung[2, 0, :2] = 1  # 8 lung pixels; infection 2 inside the lung and 4 outside: 0.25
    inf[2, 0, 1:3, :2] = 1
    inf[2, 0, 3, :2] = 1
    return [
        Case(
            (inf, lung),
            label="3 images (half the lung infected; no lung; infection partly outside the lung)",
        ),
        Case((inf.float(), lung.float()), label="the same 3 images as float 0./1. masks"),
    ]


for _exercise in (
    Exercise(
        "01.minmax_scale",
        "Min-max scaling",
        "minmax_scale",
        "labkit.data.preprocess:minmax_scale",
        minmax_cases,
        hint="every image gets its own minimum and maximum, taken over all its channels and "
        "pixels; the result is float32 whatever came in",
        hints=(
            "reduce over dims (1, 2, 3) and keep those dims (keepdim=True) so that the min and "
            "max broadcast back over the image; convert to float before subtracting",
            "a constant image has max == min: make its result 0 instead of dividing by zero "
            "(for example by not letting the divisor go below a tiny positive number)",
        ),
    ),
    Exercise(
        "01.one_hot",
        "One-hot masks",
        "one_hot",
        "labkit.data.preprocess:one_hot",
        one_hot_cases,
        hint="two channels per pixel: channel 0 says 'background', channel 1 says "
        "'infection'; at every pixel exactly one of them is 1",
        hints=(
            "background is 1 where the mask is 0; put the two channels side by side along "
            "dim 1; the result is float32 whatever the mask's dtype (uint8, float32, float64)",
        ),
    ),
    Exercise(
        "01.count_images",
        "Counting images per split and class",
        "count_images",
        "labkit.data.explore:count_images",
        count_cases,
        points=2,
        hint="one count for every split in SPLITS and every class in CLASSES, even when the "
        "folder is missing (it counts 0); only PNG images count",
        hints=(
            "look at the end of each file name (its suffix), not at whether it contains "
            "'.png' somewhere: 'notes.png.txt' is not an image",
        ),
    ),
    Exercise(
        "01.infection_fraction",
        "Infected fraction of the lung",
        "infection_fraction",
        "labkit.exercises.lab01:infection_fraction",
        fraction_cases,
        hint="for each image: the infected pixels that are also lung, divided by the lung "
        "pixels; an image without lung gives 0, and masks may be uint8 or float",
        hints=(
            "flatten each image into one row (flatten(1)) so that one sum per row counts per "
            "image; convert to float before dividing",
            "an empty lung would divide by zero: a divisor of at least 1 makes that image 0",
        ),
    ),
):
    register(_exercise)
