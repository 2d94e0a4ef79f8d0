"""Lab 03 (residual U-Net, report 000) exercises: the residual block, the residual encoder
of the U-Net, and BCE vs MSE computed by hand.

The blocks are checked by behaviour as in lab 02 (``labkit.checks.modules``: the same
weights in the student's module and labkit's, role by role, and the outputs must agree). ``bce_and_mse`` is the student-facing, numpy version of ``labkit.losses.bce_loss``
and ``mse_loss`` on probabilities (tested against them in tests/exercises/test_labs_01_03.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.checks import Case, Exercise, register
from labkit.checks.modules import output_probe, shape_probe
from labkit.checks.probes import Probe
from labkit.exercises.lab02 import ANY_SIZE_HINT, UNET_PARTS, unet_probes

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before the log


def bce_and_mse(prob: Any, truth: Any) -> dict[str, float]:
    """Mean binary cross-entropy and mean squared error of probabilities against a 0/1 mask.

    ``bce = mean(-[y log p + (1 - y) log(1 - p)])`` with p clipped to [1e-7, 1 - 1e-7];
    ``mse = mean((p - y) ** 2)``. Both are averages over all pixels; returned as floats.
    """
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    q = np.clip(p, EPS, 1 - EPS)  # log(0) would be -inf
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return {"bce": float(bce.mean()), "mse": float(((p - y) ** 2).mean())}


# ---------------------------------------------------------------------------- block probes
def _residual_hint(kind: str, c_in: int, c_out: int) -> str:
    return (
        f"ResidualBlock({c_in}, {c_out}) needs {kind} as its shortcut; the main path is conv "
        "3x3 -> BN -> ReLU -> conv 3x3 -> BN, and the ReLU comes after the addition: "
        "relu(main(x) + shortcut(x)); a projection is a 1x1 conv + BN"
    )


def residual_block_probes() -> list[Probe]:
    """Both kinds of shortcut, by output shape and by output with labkit's weights."""
    probes = []
    for c_in, c_out, kind in ((3, 8, "a projection (channels change)"), (8, 8, "the identity")):
        probes += [
            shape_probe(
                "ResidualBlock", (2, c_in, 12, 12), c_in, c_out, tag=f"03 rb shape {c_in}",
                hint="3x3 convolutions with padding=1 keep H and W; the shortcut must have "
                "out_channels channels too",
            ),
            output_probe("ResidualBlock", (2, c_in, 12, 12), c_in, c_out, tag=f"03 rb {c_in}",
                         hint=_residual_hint(kind, c_in, c_out)),
        ]  # fmt: skip
    probes.append(
        shape_probe("ResidualBlock", (2, 2, 7, 3), 2, 4, tag="03 rb train", train=True,
                    hint=ANY_SIZE_HINT)
    )  # fmt: skip
    return probes


def resunet3_probes() -> list[Probe]:
    return unet_probes(
        "ResUNet3",
        "03 ru",
        "enc1: in_channels -> w, enc2: w -> 2w, enc3: 2w -> 4w, bottleneck: 4w -> 8w",
        "every encoder level (enc1, enc2, enc3, bottleneck) is a ResidualBlock; the decoder "
        "keeps its DoubleConv blocks",
    )


# ---------------------------------------------------------------------------- cases
def loss_cases() -> list[Case]:
    rng = np.random.default_rng(3)
    truth = (rng.random((2, 1, 6, 6)) > 0.8).astype(np.uint8)
    prob = rng.uniform(0.05, 0.95, size=(2, 1, 6, 6)).astype(np.float32)
    confident = np.array([[0.0, 1.0], [1.0, 0.5]], dtype=np.float32)
    labels = np.array([[0, 1], [0, 1]], dtype=np.uint8)
    return [
        Case((prob, truth), label="random probabilities and a 0/1 mask of shape (2, 1, 6, 6)"),
        Case(
            (confident, labels),
            label="probabilities [[0, 1], [1, 0.5]] for labels [[0, 1], [0, 1]] (one "
            "confidently wrong pixel)",
        ),
        Case(
            (rng.uniform(0, 1, size=(3, 5)), rng.random((3, 5)) > 0.7),
            label="float64 probabilities and a boolean (True/False) mask of shape (3, 5)",
        ),
        Case(
            (np.full((2, 2), 0.25), np.array([[1, 0], [0, 1]])),
            label="p = 0.25 everywhere and integer labels [[1, 0], [0, 1]]",
        ),
        Case((np.full(3, 0.5), np.array([0.0, 1.0, 1.0])), label="p = 0.5 and float labels"),
    ]


for _exercise in (
    Exercise(
        "03.ResidualBlock",
        "Residual block",
        "ResidualBlock",
        "labkit.models.blocks:ResidualBlock",
        probes=residual_block_probes,
        points=2,
        hint="the output is the ReLU of (main path + shortcut): the main path transforms "
        "the input, the shortcut carries it across unchanged when it can",
        hints=(
            "the shortcut must give out_channels channels: when the channel count changes it "
            "needs its own 1x1 convolution and batch norm (the projection in the text); the "
            "main path's second batch norm comes before the addition, the ReLU after it",
            "idea: torch.nn has a module that returns its input unchanged (the identity), and "
            "a Sequential of a 1x1 Conv2d without bias and a BatchNorm2d makes the projection",
        ),
    ),
    Exercise(
        "03.ResUNet3",
        "Residual encoder of the U-Net",
        "ResUNet3",
        "labkit.models.resunet:ResUNet",
        probes=resunet3_probes,
        absent=("labkit.models.unet:UNet", *UNET_PARTS),
        hint="lab 02's U-Net with every encoder level (enc1, enc2, enc3, bottleneck) a "
        "ResidualBlock; the decoder is unchanged",
        hints=(
            "each level doubles the channels of the one above it: in_channels -> w -> 2w -> "
            "4w -> 8w",
        ),
    ),
    Exercise(
        "03.bce_and_mse",
        "BCE and MSE by hand",
        "bce_and_mse",
        "labkit.exercises.lab03:bce_and_mse",
        loss_cases,
        absent=("labkit.losses.functional:bce_loss", "labkit.losses.functional:mse_loss"),
        hint="both are averages over every pixel of a per-pixel cost; return a dict with "
        "the keys 'bce' and 'mse' holding Python floats",
        hints=(
            "log(0) is minus infinity: clip p before the log only (MSE uses p as it is); "
            "the labels may be bool, uint8 or float: convert them to float first",
            "idea: numpy can convert an array to a given dtype (asarray with dtype=float64) "
            "and clip values into a range (clip), then log and mean do the rest",
        ),
    ),
):
    register(_exercise)
