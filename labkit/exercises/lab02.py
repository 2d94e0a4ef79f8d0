"""Lab 02 (baseline U-Net, report 001) exercises: the double-conv block, the U-Net's forward
pass, and the Dice and IoU of one image.

Blocks are checked by behaviour, not by source (``labkit.checks.modules``): the student's
block and labkit's get the same weights role by role (the first 3x3 convolution that runs,
the batch norm that follows it, ...), and both must then give the same output. This accepts
any way of writing the block (``nn.Sequential`` or a ``forward``, convolutions with or
without bias) as long as it computes the same function.

``dice`` / ``iou`` are the student-facing signatures (one image, numpy masks) of
``labkit.metrics.dice`` / ``iou``, with labkit's empty-mask policy: NaN when the true mask
is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from labkit.checks import Case, Exercise, register
from labkit.checks.modules import output_probe, shape_probe
from labkit.checks.probes import Probe

# labkit's own U-Net parts: with them a U-Net is three lines, so they are absent wherever a
# U-Net is the exercise (lab 02's, lab 03's residual one).
UNET_PARTS = (
    "labkit.models.unet:UNetEncoder",
    "labkit.models.unet:UNetDecoder",
    "labkit.models.unet:plain_encoder",
)

# The soft Dice/Jaccard core of labkit's losses: with logits of +-200 it *is* the hard
# score (red team 3, A4), so it is absent wherever Dice or IoU is the exercise.
SOFT_OVERLAP = "labkit.losses.functional:overlap_term"


# ---------------------------------------------------------------------------- references
def _counts(pred: Any, truth: Any) -> tuple[torch.Tensor, ...]:
    from labkit.metrics import confusion_counts

    # labkit counts batches of shape (B, 1, H, W): one image, its pixels in one column
    p = torch.from_numpy(np.asarray(pred).astype(bool)).reshape(1, 1, -1, 1)
    t = torch.from_numpy(np.asarray(truth).astype(bool)).reshape(1, 1, -1, 1)
    return confusion_counts(p, t)


def dice(pred: Any, truth: Any) -> float:
    """Dice = 2|P & T| / (|P| + |T|) of one image's binary masks; NaN when ``truth`` is empty."""
    from labkit import metrics

    return float(metrics.dice(*_counts(pred, truth))[0])


def iou(pred: Any, truth: Any) -> float:
    """IoU = |P & T| / |P | T| of one image's binary masks; NaN when ``truth`` is empty."""
    from labkit import metrics

    return float(metrics.iou(*_counts(pred, truth))[0])


# ---------------------------------------------------------------------------- block probes
DOUBLE_CONV_HINT = "the order is conv 3x3 -> BatchNorm2d -> ReLU, twice"
UNET3_HINT = (
    "max-pool before enc2, enc3 and the bottleneck; concatenate torch.cat([upsampled, skip], "
    "dim=1) with the upsampled map first"
)
ANY_SIZE_HINT = "nothing may depend on a fixed channel count or image size, nor on eval mode"


def double_conv_probes() -> list[Probe]:
    """The output shape, the output with the same weights as labkit's block, training mode."""
    return [
        shape_probe(
            "DoubleConv", (2, 3, 12, 12), 3, 8, tag="02 dc shape",
            hint="3x3 convolutions with padding=1 keep H and W; the second convolution goes "
            "from out_channels to out_channels",
        ),
        output_probe("DoubleConv", (2, 3, 12, 12), 3, 8, tag="02 dc", hint=DOUBLE_CONV_HINT),
        shape_probe("DoubleConv", (1, 5, 9, 11), 5, 7, tag="02 dc train", train=True,
                    hint=ANY_SIZE_HINT),
    ]  # fmt: skip


def unet_probes(name: str, tag: str, shape_hint: str, output_hint: str) -> list[Probe]:
    """A three-level U-Net class (lab 02's ``UNet3``, lab 03's ``ResUNet3``): its output shape,
    its output with the same weights as labkit's ``depth=3`` model, and training mode."""
    small = {"in_channels": 1, "classes": 1, "base_width": 4}
    return [
        shape_probe(name, (2, 1, 32, 32), tag=f"{tag} shape", hint=shape_hint, **small),
        output_probe(name, (2, 1, 32, 32), tag=tag, ref_kwargs={"depth": 3}, hint=output_hint,
                     **small),
        shape_probe(name, (2, 3, 16, 8), tag=f"{tag} train", train=True, hint=ANY_SIZE_HINT,
                    in_channels=3, classes=2, base_width=2),
    ]  # fmt: skip


def unet3_probes() -> list[Probe]:
    return unet_probes(
        "UNet3",
        "02 unet",
        "return self.head(...) of the last decoder level; each up-step doubles H and W",
        UNET3_HINT,
    )


# ---------------------------------------------------------------------------- cases
def _masks() -> dict[str, np.ndarray]:
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    a[:2] = True  # rows 0-1: 8 pixels
    b[1:3] = True  # rows 1-2: 8 pixels, 4 shared with a
    c = np.zeros((4, 4), dtype=bool)
    c[3, 3] = True
    return {"a": a, "b": b, "c": c, "empty": np.zeros((4, 4), dtype=bool)}


def overlap_cases() -> list[Case]:
    m = _masks()
    return [
        Case((m["a"], m["b"]), label="two masks of 8 pixels sharing 4"),
        Case((m["a"], m["a"]), label="identical masks"),
        Case((m["c"], m["a"]), label="masks that do not touch"),
        Case((m["empty"], m["a"]), label="an empty prediction of a non-empty mask"),
        Case(
            (m["a"].astype(np.uint8), m["b"].astype(np.uint8)),
            label="0/1 uint8 masks of 8 pixels sharing 4",
        ),
        Case((m["a"], m["empty"]), label="an empty true mask and 8 predicted pixels"),
        Case((m["empty"], m["empty"]), label="an empty true mask and an empty prediction"),
        Case(
            ((m["a"] * 255).astype(np.uint8)[None], (m["b"] * 255).astype(np.uint8)[None]),
            label="0/255 uint8 masks of shape (1, 4, 4) (as read from a PNG), sharing 4 pixels",
        ),
        Case(
            (m["a"].astype(np.float32).ravel(), m["b"].astype(np.float32).ravel()),
            label="flat float 0./1. masks of 16 pixels",
        ),
        Case((~m["empty"], ~m["empty"]), label="two full masks"),
    ]


for _exercise in (
    Exercise(
        "02.DoubleConv",
        "Double-conv block",
        "DoubleConv",
        "labkit.models.blocks:DoubleConv",
        probes=double_conv_probes,
        absent=("labkit.models.blocks:ConvBNReLU",),
        points=2,
        hint="two rounds of the same three steps: a 3x3 convolution, a batch norm, a ReLU; "
        "the first convolution changes the number of channels, the second keeps it",
        hints=(
            "padding=1 keeps H and W; each batch norm has as many features as the "
            "convolution before it has output channels",
        ),
    ),
    Exercise(
        "02.UNet3",
        "U-Net forward pass",
        "UNet3",
        "labkit.models.unet:UNet",
        probes=unet3_probes,
        absent=UNET_PARTS,
        points=2,
        hint="follow the shape table row by row: the encoder pools before each deeper "
        "level; the decoder upsamples, then joins the encoder map of the same size",
        hints=(
            "the join is along the channel dimension, the upsampled map first; the last "
            "decoder level goes through the head, and no sigmoid comes after it",
        ),
    ),
    Exercise(
        "02.dice",
        "Dice coefficient",
        "dice",
        "labkit.exercises.lab02:dice",
        overlap_cases,
        # IoU gives Dice (D = 2J / (1 + J)): labkit's IoU is absent here too.
        absent=(
            "labkit.metrics:dice",
            "labkit.metrics:iou",
            "labkit.exercises.lab02:iou",
            SOFT_OVERLAP,
        ),
        hint="Dice is twice the overlap divided by the two sizes added up; for an empty true "
        "mask, labkit's convention is NaN",
        hints=(
            "masks come as bool, 0/1 or 0/255 (uint8 or float), of any shape: any value "
            "above 0 is foreground. Multiplying two 0/255 masks does not count the overlap",
            "turn both masks into True/False first; the overlap is the pixels True in both "
            "(a logical and); test for an empty truth before dividing",
        ),
    ),
    Exercise(
        "02.iou",
        "IoU (Jaccard index)",
        "iou",
        "labkit.exercises.lab02:iou",
        overlap_cases,
        absent=(
            "labkit.metrics:iou",
            "labkit.metrics:dice",
            "labkit.exercises.lab02:dice",
            SOFT_OVERLAP,
        ),
        hint="IoU is the overlap divided by the union (pixels in either mask); an empty true "
        "mask has no IoU: NaN",
        hints=(
            "masks come as bool, 0/1 or 0/255 (uint8 or float), of any shape: any value "
            "above 0 is foreground. Adding or multiplying 0/255 masks does not count pixels",
            "turn both masks into True/False first; overlap is a logical and, union a logical "
            "or; test for an empty truth before dividing",
        ),
    ),
):
    register(_exercise)
