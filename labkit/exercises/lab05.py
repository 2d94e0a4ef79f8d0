"""Lab 05 (lung -> infection cascade, report 003) exercises: the stage-2 input, report 003's
combined loss, the lung constraint, and counting false positives outside the lung.

References: ``CascadeModel.infection_input`` (labkit's own stage-2 input) and, defined here,
``combined_loss`` (labkit's ``CombinedLoss`` with report 003's weights, as a function),
``constrain_to_lung`` (the constraint on probabilities; labkit's cascade applies the same
constraint to logits, ``mask_outside_lung``, and tests/exercises/test_labs_04_06.py checks that the two
agree) and ``fp_outside_lung``.
"""

from __future__ import annotations

import torch

from labkit.checks import Case, Exercise, register
from labkit.checks.losses import loss_probes
from labkit.checks.probes import Probe


# ---------------------------------------------------------------------------- references
def combined_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Report 003's stage-2 loss: 0.5 soft Dice + 0.3 BCE + 0.2 focal (gamma 2), from logits.

    Shape:
        logits ``(B, 1, H, W)``, target ``(B, 1, H, W)`` {0, 1} -> scalar tensor.
    """
    from labkit.losses import CombinedLoss

    return CombinedLoss(dice_weight=0.5, bce_weight=0.3, focal_weight=0.2, gamma=2.0)(
        logits, target
    )


def constrain_to_lung(probs: torch.Tensor, lung_mask: torch.Tensor) -> torch.Tensor:
    """Infection probability set to 0 outside the lung: ``probs`` where ``lung_mask > 0``.

    Shape:
        probs ``(B, 1, H, W)`` float, lung_mask ``(B, 1, H, W)`` {0, 1} -> like ``probs``.
    """
    return torch.where(lung_mask > 0, probs, torch.zeros_like(probs))


def fp_outside_lung(pred: torch.Tensor, truth: torch.Tensor, lung: torch.Tensor) -> torch.Tensor:
    """False-positive pixels outside the lung, per image: predicted, not true, not lung.

    Shape:
        pred, truth, lung ``(N, 1, H, W)`` bool or {0, 1} -> ``(N,)`` int64.
    """
    p, t, lng = pred > 0, truth > 0, lung > 0
    return (p & ~t & ~lng).flatten(1).sum(1)


# ---------------------------------------------------------------------------- cases
def infection_input_cases() -> list[Case]:
    g = torch.Generator().manual_seed(50)
    rgb = torch.randn(2, 3, 4, 4, generator=g)
    grey = torch.rand(1, 1, 3, 5, generator=g)
    mask = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    return [
        Case((rgb, mask), label="an RGB batch (2, 3, 4, 4) and a float lung mask (2, 1, 4, 4)"),
        Case(
            (grey, (torch.rand(1, 1, 3, 5, generator=g) > 0.5).to(torch.uint8)),
            label="a grey image (1, 1, 3, 5) and a uint8 lung mask",
        ),
        Case(
            (rgb[:1].double(), mask[:1] > 0),
            label="a float64 RGB image (1, 3, 4, 4) and a boolean lung mask",
        ),
    ]


def _logits_and_masks(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(3, 1, 6, 6, generator=g)
    target = (torch.rand(3, 1, 6, 6, generator=g) > 0.6).float()
    return logits, target


def combined_cases() -> list[Case]:
    logits, target = _logits_and_masks(51)
    with_empty = target.clone()
    with_empty[1] = 0  # an image with no infection (Non-COVID / Normal)
    small = torch.zeros(2, 1, 4, 4)
    small[0, 0, :2, :2] = 1
    sure = torch.where(small > 0, 8.0, -8.0)  # confident and right
    return [
        Case((logits, target), label="random logits of 3 images (3, 1, 6, 6)"),
        Case((logits, with_empty), label="3 images, the second with an empty mask"),
        Case((sure, small), label="confident, correct logits (+-8) on 2 images, one empty"),
    ]


def constrain_cases() -> list[Case]:
    g = torch.Generator().manual_seed(52)
    probs = torch.rand(2, 1, 5, 5, generator=g)
    lung = (torch.rand(2, 1, 5, 5, generator=g) > 0.4).float()
    return [
        Case((probs, lung), label="probabilities (2, 1, 5, 5) and a float 0/1 lung mask"),
        Case((probs, lung.to(torch.uint8)), label="the same with a uint8 lung mask"),
        Case(
            (probs.double(), lung.to(torch.uint8) * 255),
            label="float64 probabilities and a 0/255 uint8 lung mask (as read from a PNG)",
        ),
        Case((probs, lung > 0), label="a boolean lung mask"),
    ]


def fp_cases() -> list[Case]:
    lung = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    lung[:, :, 1:3, 1:3] = True  # a 2x2 "lung" in the middle
    truth = torch.zeros_like(lung)
    truth[0, 0, 0, 0] = True  # infection drawn outside the lung mask (masks are imperfect)
    pred = torch.zeros_like(lung)
    pred[0, 0, 0, :] = True  # 4 pixels outside the lung; one of them is truly infected
    pred[0, 0, 1, 1] = True  # inside the lung: not counted here
    pred[1] = ~lung[1]  # everything outside the lung: 12 pixels
    return [
        Case((pred, truth, lung), label="bool masks of 2 images (4x4, lung = the middle 2x2)"),
        Case(
            (pred.float(), truth.float(), lung.to(torch.uint8)),
            label="the same as float / uint8 0-1 masks",
        ),
        Case(
            (pred.to(torch.uint8) * 255, truth.to(torch.uint8) * 255, lung.to(torch.uint8) * 255),
            label="the same as 0/255 uint8 masks (as read from a PNG)",
        ),
    ]


def combined_probes() -> list[Probe]:
    """The combined loss's value and its gradient on every case."""
    return loss_probes(combined_cases())


for _exercise in (
    Exercise(
        "05.infection_input",
        "Stage-2 input: image + lung mask",
        "infection_input",
        "labkit.models.cascade:CascadeModel.infection_input",
        infection_input_cases,
        points=1,
        hint="stage 2 sees the image with one more channel after its own: the lung mask",
        hints=(
            "join along the channel dimension (dim 1); the mask may be bool, uint8 or float "
            "and must first take the image's dtype",
        ),
    ),
    Exercise(
        "05.combined_loss",
        "Report 003's combined loss",
        "combined_loss",
        "labkit.exercises.lab05:combined_loss",
        absent=("labkit.losses.modules:CombinedLoss",),
        probes=combined_probes,
        points=2,
        hint="a weighted sum of three losses, all from the logits: 0.5 soft Dice + 0.3 BCE "
        "+ 0.2 focal (gamma 2), as one torch tensor",
        hints=(
            "soft Dice uses probabilities (the sigmoid of the logits), one value per image "
            "with 1 added to the overlap term and to the sum (so an empty mask predicted "
            "empty costs 0), then the mean over the images; BCE and focal are means over "
            "every pixel",
        ),
    ),
    Exercise(
        "05.constrain_to_lung",
        "The lung constraint",
        "constrain_to_lung",
        "labkit.exercises.lab05:constrain_to_lung",
        constrain_cases,
        absent=(
            "labkit.models.cascade:mask_outside_lung",
            "labkit.data.preprocess:apply_lung_mask",
        ),
        points=1,
        hint="outside the lung the infection probability becomes 0, inside it stays as it "
        "was; the result has the dtype of probs",
        hints=("'inside the lung' means lung_mask > 0: the mask may be bool, 0/1 or 0/255",),
    ),
    Exercise(
        "05.fp_outside_lung",
        "False positives outside the lung",
        "fp_outside_lung",
        "labkit.exercises.lab05:fp_outside_lung",
        fp_cases,
        points=1,
        hint="a false positive outside the lung is a pixel predicted infected, not truly "
        "infected and not lung; count them for each image",
        hints=(
            "turn each mask into True/False with > 0 (masks may be bool, 0/1 or 0/255), "
            "combine them with logical and/not, and sum each image's pixels: int64, shape (N,)",
        ),
    ),
):
    register(_exercise)
