"""Lab 04 (pretrained encoder, reports 002 and 003) exercises: ImageNet normalisation of a
grey X-ray, freezing and unfreezing the encoder, and report 002's categorical focal loss.

References are labkit's own implementations where one has the student's signature
(``labkit.data.preprocess.imagenet_normalize``, ``labkit.losses.focal_loss``);
``set_encoder_trainable`` is defined here. Its check runs on a real smp U-Net
(EfficientNet-B0 encoder, the smallest of the lab's models), not on a stand-in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labkit.checks import Case, CheckFailed, Exercise, describe, register
from labkit.checks.losses import loss_probes
from labkit.checks.probes import Probe


# ---------------------------------------------------------------------------- references
def set_encoder_trainable(model: nn.Module, trainable: bool) -> int:
    """Freeze (``trainable=False``) or unfreeze the encoder of an smp-style U-Net.

    Only ``model.encoder``'s parameters change; the decoder and the head stay trainable.

    Returns:
        The number of trainable parameters (scalars, not tensors) of the whole model.
    """
    for p in model.encoder.parameters():
        p.requires_grad_(trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------- cases
def normalize_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    uint8 = torch.randint(0, 256, (2, 1, 4, 4), generator=g, dtype=torch.uint8)
    uint8[0, 0, 0, 0], uint8[1, 0, 0, 0] = 0, 255  # the extremes of the range
    return [
        Case((uint8,), label="2 grey uint8 images (values 0-255)"),
        Case((torch.rand(3, 1, 5, 5, generator=g),), label="3 grey float images in [0, 1]"),
        Case((torch.full((1, 1, 2, 2), 255, dtype=torch.uint8),), label="an all-white uint8 image"),
        Case(
            (torch.rand(1, 1, 3, 2, generator=g, dtype=torch.float64),),
            label="a grey float64 image in [0, 1] (the result is float32 whatever the input)",
        ),
    ]


def focal_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    logits = 2 * torch.randn(2, 2, 6, 6, generator=g)
    target = (torch.rand(2, 1, 6, 6, generator=g) > 0.7).float()
    sure = torch.zeros(1, 2, 2, 2)
    sure[:, 0], sure[:, 1] = -60.0, 60.0  # infection certain everywhere (difference 120)
    half = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # right on one pixel, very wrong on 3
    return [
        Case((logits, target), label="random 2-class logits (2, 2, 6, 6)"),
        Case((logits, target), {"gamma": 0.0}, label="gamma=0 (plain cross-entropy)"),
        Case((logits, target), {"gamma": 5.0}, label="gamma=5"),
        Case(
            (sure, half),
            label="very confident logits (infection logit 120 above background) that are "
            "wrong on 3 of 4 pixels",
        ),
    ]


# ---------------------------------------------------------------------------- tests
def focal_probes() -> list[Probe]:
    """The focal loss's value and its gradient on every case."""
    return loss_probes(focal_cases())


def _small_pretrained_unet() -> nn.Module:
    from labkit.models import build_model

    return build_model("unet-efficientnet-b0", in_channels=3, classes=2)


def _trainable_names(model: nn.Module, part: str) -> tuple[int, int]:
    """(tensors of ``part`` that require grad, tensors of ``part``)."""
    params = [p for n, p in model.named_parameters() if n.split(".", 1)[0] == part]
    return sum(p.requires_grad for p in params), len(params)


def _expect_count(got: Any, expected: int, trainable: str) -> None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if got != expected:
        raise CheckFailed(
            f"set_encoder_trainable(model, {trainable}) should return {expected:,} trainable "
            f"parameters, got {describe(got)}",
            "count numbers, not tensors: a parameter tensor holds numel() numbers, and only "
            "the parameters that require gradients count",
        )


def freezing_observations(fn: Any) -> dict:
    """Freeze, then unfreeze, a small smp U-Net with ``fn``; what it returned and changed.

    Raises ``CheckFailed`` with a student's explanation as soon as something is wrong that
    needs no reference to see (the observation is still compared with labkit's).
    """
    model = _small_pretrained_unet()
    # The decoder's own choice, which the student must leave alone: one frozen tensor.
    decoder_frozen = next(model.decoder.parameters()).requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    total = sum(p.numel() for p in model.parameters()) - decoder_frozen.numel()
    encoder = sum(p.numel() for p in model.encoder.parameters())

    _expect_count(fn(model, False), total - encoder, "False")
    on, n = _trainable_names(model, "encoder")
    if on:
        raise CheckFailed(
            f"after set_encoder_trainable(model, False), expected 0 of the encoder's {n} "
            f"parameter tensors to require gradients, got {on}",
            "every parameter of model.encoder must stop requiring gradients, not only some",
        )
    for part, frozen in (("decoder", 1), ("segmentation_head", 0)):
        on, n = _trainable_names(model, part)
        if on != n - frozen:
            raise CheckFailed(
                f"after set_encoder_trainable(model, False), expected {n - frozen} of the {n} "
                f"parameter tensors of model.{part} to stay trainable (as they were), got {on}",
                "change model.encoder only; leave the decoder and head exactly as they were",
            )

    _expect_count(fn(model, True), total, "True")
    on, n = _trainable_names(model, "encoder")
    if on != n:
        raise CheckFailed(
            f"after set_encoder_trainable(model, True), expected all {n} encoder parameter "
            f"tensors to require gradients, got {on}",
            "unfreezing sets the same flag back, to the value passed as trainable",
        )
    if decoder_frozen.requires_grad:
        raise CheckFailed(
            "after set_encoder_trainable(model, True), a decoder tensor that was frozen "
            "before became trainable",
            "change model.encoder only; leave the decoder and head exactly as they were",
        )
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed:
        raise CheckFailed(
            f"expected the weights to stay as they were, but {len(changed)} tensor(s) changed "
            f"(e.g. {changed[0]})",
            "freezing only stops gradients; it must not re-initialise or modify any weight",
        )
    return {
        "trainable after freezing": total - encoder,
        "trainable after unfreezing": total,
        "requires_grad of each tensor": [p.requires_grad for p in model.parameters()],
    }


def freezing_probes() -> list[Probe]:
    return [
        Probe(
            "set_encoder_trainable(model, False), then (model, True), on a small smp U-Net "
            "whose decoder has one frozen tensor",
            freezing_observations,
        )
    ]


for _exercise in (
    Exercise(
        "04.imagenet_normalize",
        "Grey to ImageNet-normalised RGB",
        "imagenet_normalize",
        "labkit.data.preprocess:imagenet_normalize",
        normalize_cases,
        points=2,
        hint="make the image look like what the encoder was trained on: three channels "
        "with values in [0, 1], then each channel shifted by its ImageNet mean and divided "
        "by its ImageNet std",
        hints=(
            "uint8 images are 0-255 and float ones already in [0, 1]; the grey channel is "
            "copied three times; the means and stds need a shape that broadcasts over the "
            "batch, height and width",
            "idea: x.float() / 255 for uint8; repeat copies the channel dimension three times; "
            "the mean and std viewed as shape (1, 3, 1, 1) broadcast over the batch",
        ),
    ),
    Exercise(
        "04.set_encoder_trainable",
        "Freezing and unfreezing the encoder",
        "set_encoder_trainable",
        "labkit.exercises.lab04:set_encoder_trainable",
        probes=freezing_probes,
        points=2,
        hint="freezing is a flag on each parameter of model.encoder (requires_grad); "
        "everything else stays exactly as it was",
        hints=(
            "the count is of numbers, not tensors: add up each trainable parameter's number "
            "of elements over the whole model",
        ),
    ),
    Exercise(
        "04.focal_loss",
        "Categorical focal loss",
        "focal_loss",
        "labkit.losses:focal_loss",
        probes=focal_probes,
        points=2,
        hint="the focal loss is each pixel's cross-entropy for its true class, multiplied "
        "by (1 - p_t) ** gamma so that pixels already right count less; then the mean over "
        "all pixels, as a torch tensor",
        hints=(
            "take log-probabilities with a log-softmax over the class dimension (dim 1) and "
            "pick each pixel's true class with the target as an index; p_t is the exp of "
            "that log-probability",
            "idea: torch.log_softmax over dim 1, then gather along dim 1 with the target "
            "turned into an integer index (same shape (B, 1, H, W))",
        ),
    ),
):
    register(_exercise)
