"""Lab 06 (FV block, PASPP, deep supervision; report 004) exercises: the FV block's
contrast-enhancement gate, PASPP's progressive merge, and the deep-supervision loss.

Modules are checked by behaviour (``labkit.checks.modules``): the student's module and
labkit's get the same weights, and both must give the same output.

* ``ContrastGate``: the two fully connected layers are matched in the order they run (as
  ``nn.Linear`` or 1x1 ``nn.Conv2d``).
* ``PASPP``: the student writes ``forward`` only (the layers are given, with labkit's
  names), so the weights are matched by state-dict key.

``deep_supervision_loss`` is the student-facing function form of
``labkit.losses.DeepSupervisionLoss``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labkit.checks import Case, Exercise, register
from labkit.checks.losses import loss_probes
from labkit.checks.modules import output_probe
from labkit.checks.probes import Probe


# ---------------------------------------------------------------------------- references
class ContrastGate(nn.Module):
    """Report 004's contrast-enhancement gate: ONE number in (0, 1) per image.

    global average pool -> FC C -> C/2 -> ReLU -> FC C/2 -> 1 -> sigmoid.

    Shape:
        ``(B, C, H, W)`` -> ``(B, 1, 1, 1)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = max(1, channels // 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, half)
        self.fc2 = nn.Linear(half, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = self.pool(f).flatten(1)  # (B, C): the mean of each channel
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # (B, 1)
        return g[:, :, None, None]  # (B, 1, 1, 1): broadcasts over channels and pixels


def deep_supervision_loss(
    outputs: torch.Tensor | list[torch.Tensor],
    target: torch.Tensor,
    base_loss: Any,
    final_weight: float = 0.5,
) -> torch.Tensor:
    """``final_weight * base(final) + (1 - final_weight) * mean(base(aux_i))``.

    ``outputs`` is ``[final, aux_1, ...]`` (training mode) or one tensor (eval mode).
    """
    from labkit.losses import DeepSupervisionLoss

    return DeepSupervisionLoss(base_loss, final_weight)(outputs, target)


# ---------------------------------------------------------------------------- probes
GATE_LAYERS_HINT = (
    "nn.Linear(C, C // 2) then nn.Linear(C // 2, 1): the CE gate ends in ONE number (an SE "
    "gate would end in C)"
)
# The ladder goes from the idea (the exercise's hint) through this one (what to look at
# when the gates differ) to the exercise's `hints` (the layer sizes and the output shape);
# none of them is code.
GATE_HINT = (
    "with the same weights in its two layers your gate differs from labkit's: check what "
    "is averaged (each channel over all its pixels: C numbers per image) and the order of "
    "the steps (first layer, ReLU, second layer, sigmoid)"
)
PASPP_HINT = (
    "every branch sees the same input x; the first two branches' outputs are merged by "
    "merge_small, the last two by merge_large, and fuse merges the two results; each merge "
    "joins its inputs along the channel dimension, in branch order"
)


def gate_probes() -> list[Probe]:
    """The gate with the same FC weights as labkit's, for an even and an odd channel count
    (C // 2 rounds down), on feature maps of other shapes."""
    return [
        output_probe("ContrastGate", shape, channels, tag=f"06 gate {channels}", layout="fc",
                     scale=3.0, hint=GATE_HINT)
        for channels, shape in ((8, (3, 8, 6, 4)), (3, (2, 3, 3, 7)))
    ]  # fmt: skip


def paspp_probes() -> list[Probe]:
    """PASPP's output with the same weights as labkit's (its layers are given), also with
    other dilations (a keyword of the given ``__init__``) and a non-square input."""
    return [
        output_probe("PASPP", (2, 16, 9, 9), 16, tag="06 paspp", layout="state_dict",
                     hint=PASPP_HINT),
        output_probe("PASPP", (1, 8, 7, 10), 8, tag="06 paspp dil", layout="state_dict",
                     hint=PASPP_HINT, dilations=(1, 3, 5, 7)),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- cases
def _probability_mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A plain function as the base loss (any callable ``loss(logits, target)`` is allowed)."""
    return ((torch.sigmoid(logits) - target) ** 2).mean()


def deep_supervision_cases() -> list[Case]:
    from labkit.losses import BCEDiceLoss

    g = torch.Generator().manual_seed(64)
    target = (torch.rand(2, 1, 8, 8, generator=g) > 0.7).float()
    outs = [2 * torch.randn(2, 1, 8, 8, generator=g) for _ in range(4)]
    base = BCEDiceLoss()  # report 004: 0.5 BCE + Dice
    return [
        Case((outs[:3], target, base), label="a final output and 2 auxiliary heads"),
        Case(
            (outs, target, base),
            {"final_weight": 0.7},
            label="a final output and 3 auxiliary heads, final_weight=0.7",
        ),
        Case((outs[0], target, base), label="one tensor (a model in eval mode)"),
        Case(([outs[1]], target, base), label="a list with the final output only"),
        Case(
            (outs, target, _probability_mse),
            {"final_weight": 0.25},
            label="3 auxiliary heads, final_weight=0.25, a plain function as base_loss",
        ),
    ]


def deep_supervision_probes() -> list[Probe]:
    """The loss's value and its gradient with respect to every head, on every case."""
    return loss_probes(deep_supervision_cases())


for _exercise in (
    Exercise(
        "06.ContrastGate",
        "FV block: the contrast-enhancement gate",
        "ContrastGate",
        "labkit.exercises.lab06:ContrastGate",
        probes=gate_probes,
        absent=("labkit.models.fvpaspp:FVBlock",),
        points=2,
        hint="one gate per image: average each channel over the image, squeeze the C "
        "averages into ONE number with two fully connected layers, and make it a weight in "
        "(0, 1) with a sigmoid",
        hints=(
            "the layers go C -> C // 2 -> (ReLU) -> 1, which gives (B, 1); give the gate the "
            "shape (B, 1, 1, 1) so that it multiplies every channel and pixel",
            "idea: f.mean over the two pixel dimensions (or nn.AdaptiveAvgPool2d(1) and a "
            "flatten) gives (B, C); indexing with [:, :, None, None] adds the two pixel axes",
        ),
    ),
    Exercise(
        "06.PASPP",
        "PASPP: the progressive merge",
        "PASPP",
        "labkit.models.fvpaspp:PASPP",
        probes=paspp_probes,
        points=2,
        hint="run the four branches on the same input, merge them in pairs (dilations 1 with "
        "2, 4 with 8), then merge the two halves",
        hints=(
            "each merge concatenates along the channel dimension and applies the layer "
            "given for it in __init__: merge_small, merge_large, then fuse",
        ),
    ),
    Exercise(
        "06.deep_supervision_loss",
        "Deep-supervision loss",
        "deep_supervision_loss",
        "labkit.exercises.lab06:deep_supervision_loss",
        absent=("labkit.losses.modules:DeepSupervisionLoss",),
        probes=deep_supervision_probes,
        points=2,
        hint="the final output gets final_weight of the loss, and the auxiliary heads share "
        "the rest equally; a single tensor (eval mode) is just the base loss",
        hints=(
            "a list is [final, aux_1, aux_2, ...]: the auxiliary part is the MEAN of the base "
            "loss over the auxiliary heads; with none, the loss is the final output's alone; "
            "base_loss is any function loss(logits, target)",
        ),
    ),
):
    register(_exercise)
