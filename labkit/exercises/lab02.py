"""Lab 02 (baseline U-Net, report 001) exercises: the double-conv block, the U-Net's forward
pass, and the Dice and IoU of one image.

Blocks are checked by behaviour, not by source: labkit's block is built, its weights are
copied into the student's block role by role (the first 3x3 convolution that runs, the
batch norm that follows it, ...), and both must then give the same output. This accepts
any way of writing the block (``nn.Sequential`` or a ``forward``, convolutions with or
without bias) as long as it computes the same function; ``copy_weights`` is reused by lab 03.

``dice`` / ``iou`` are the student-facing signatures (one image, numpy masks) of
``labkit.metrics.dice`` / ``iou``, with labkit's empty-mask policy: NaN when the true mask
is empty.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.checks import Case, CheckFailed, Exercise, expect, register
from labkit.models.init import randomise_batch_norms

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


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


# ---------------------------------------------------------------------------- block tests
def _role_name(role: tuple) -> str:
    if role[0] == "bn":
        return f"the batch norm after the {_role_name(role[1])}" if role[1] else "a batch norm"
    (kind, kernel), number = role
    what = (
        "transposed convolution"
        if kind == "ConvTranspose2d"
        else f"{kernel[0]}x{kernel[1]} convolution"
    )
    return f"{what} no. {number + 1}"


def conv_bn_roles(module: nn.Module, x: torch.Tensor) -> dict[tuple, nn.Module]:
    """The convolutions and batch norms of ``module`` by role, found by running it on ``x``.

    A convolution's role is (kind and kernel size, how many of that kind ran before it); a
    batch norm's role is "after" the convolution that ran last before it. Modules are taken
    in the order they first run, so the role does not depend on attribute names.
    """
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, _inp: order.append(mod) if mod not in order else None
        )
        for m in module.modules()
        if isinstance(m, (*_CONVS, nn.BatchNorm2d))
    ]
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    roles: dict[tuple, nn.Module] = {}
    seen: Counter = Counter()
    last = None
    for m in order:
        if isinstance(m, _CONVS):
            kind = (type(m).__name__, tuple(m.kernel_size))
            last = (kind, seen[kind])
            seen[kind] += 1
            roles[last] = m
        else:
            roles[("bn", last)] = m
    return roles


def _inventory(roles: dict[tuple, nn.Module]) -> str:
    kinds = Counter(
        "batch norm" if r[0] == "bn" else _role_name((r[0], 0)).removesuffix(" no. 1")
        for r in roles
    )
    return ", ".join(f"{n} x {k}" for k, n in sorted(kinds.items())) or "none"


@torch.no_grad()
def copy_weights(
    reference: nn.Module, student: nn.Module, x: torch.Tensor, hint: str = "", what: str = ""
) -> None:
    """Copy ``reference``'s conv and batch-norm parameters into ``student``, role by role.

    ``hint`` is shown when the layers differ; ``what`` (e.g. ``"ResidualBlock(8, 8)"``)
    starts every message.

    Raises:
        CheckFailed: the two do not have the same convolutions and batch norms running in
            the same order, or a shape differs (the message says which layer).
    """
    ref, mine = conv_bn_roles(reference, x), conv_bn_roles(student, x)
    where = f"{what}: " if what else ""
    if set(ref) != set(mine):
        raise CheckFailed(
            f"{where}expected these layers to run: {_inventory(ref)}; yours runs: "
            f"{_inventory(mine)}",
            hint or "each 3x3 convolution is followed by a batch norm and a ReLU",
        )
    for role, a in ref.items():
        b = mine[role]
        name = where + _role_name(role)
        if isinstance(a, _CONVS):
            if tuple(b.weight.shape) != tuple(a.weight.shape):
                raise CheckFailed(
                    f"{name}: expected weights of shape {tuple(a.weight.shape)} (out, in, kh, kw), "
                    f"got {tuple(b.weight.shape)}",
                    "check the in/out channels and padding of each convolution",
                )
            if a.stride != b.stride or a.padding != b.padding or a.dilation != b.dilation:
                raise CheckFailed(
                    f"{name}: expected stride {a.stride}, padding {a.padding}, got stride "
                    f"{b.stride}, padding {b.padding}",
                    "a 3x3 convolution needs padding=1 to keep the image size",
                )
            b.weight.copy_(a.weight)
            if b.bias is not None:
                b.bias.copy_(a.bias if a.bias is not None else torch.zeros_like(b.bias))
            elif a.bias is not None:
                raise CheckFailed(f"{name}: expected a bias (bias=True), yours has none")
        else:
            if b.num_features != a.num_features:
                raise CheckFailed(
                    f"{name}: expected BatchNorm2d({a.num_features}), got BatchNorm2d({b.num_features})"
                )
            for key in ("weight", "bias", "running_mean", "running_var"):
                dst, src = getattr(b, key), getattr(a, key)
                if dst is None or src is None:
                    raise CheckFailed(f"{name}: expected affine=True and running statistics")
                dst.copy_(src)


def build(cls: Any, *args: Any, what: str, **kwargs: Any) -> nn.Module:
    """``cls(*args, **kwargs)``, with a student-readable failure if it is not a module."""
    obj = cls(*args, **kwargs)  # NotImplementedError from a stub propagates: "not implemented"
    if not isinstance(obj, nn.Module):
        raise CheckFailed(f"{what} should be an nn.Module, got {type(obj).__name__}")
    return obj


def same_function(
    student: nn.Module,
    reference: nn.Module,
    x: torch.Tensor,
    hint: str,
    what: str = "",
    atol: float = 1e-4,
) -> None:
    """Copy the reference's weights into the student's module; both must then agree on ``x``."""
    randomise_batch_norms(reference)
    copy_weights(reference, student, x, hint=hint, what=what)
    with torch.no_grad():
        got, expected = student.eval()(x), reference.eval()(x)
    expect(
        got,
        expected,
        f"{what + ': ' if what else ''}the output with labkit's weights copied into yours",
        atol=atol,
        rtol=1e-3,
        hint=hint,
    )


def train_shape(
    cls: Any, x_shape: tuple, out_shape: tuple, *args: Any, what: str, **kwargs: Any
) -> None:
    """``cls(*args, **kwargs)`` in training mode (batch statistics) gives ``out_shape``.

    The grader tries other sizes, channel counts and training mode; so does the check.
    """
    module = build(cls, *args, what=what, **kwargs)
    x = torch.randn(*x_shape, generator=torch.Generator().manual_seed(2))
    out = module.train()(x)
    expect(
        tuple(out.shape),
        out_shape,
        f"the output shape of {what} in training mode on a {tuple(x_shape)} input",
        hint="nothing may depend on a fixed channel count or image size, nor on eval mode",
    )


def test_double_conv(student: Any, reference: Any) -> None:
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    block = build(student, 3, 8, what="DoubleConv(3, 8)")
    with torch.no_grad():
        out = block.eval()(x)
    expect(
        tuple(out.shape),
        (2, 8, 12, 12),
        "the output shape of DoubleConv(3, 8) on a (2, 3, 12, 12) input",
        hint="3x3 convolutions with padding=1 keep H and W; the second convolution goes "
        "from out_channels to out_channels",
    )
    same_function(
        block,
        reference(3, 8),
        x,
        hint="the order is conv 3x3 -> BatchNorm2d -> ReLU, twice",
    )
    train_shape(student, (1, 5, 9, 11), (1, 7, 9, 11), 5, 7, what="DoubleConv(5, 7)")


def test_unet3(student: Any, reference: Any) -> None:
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    model = build(student, in_channels=1, classes=1, base_width=4, what="UNet3(...)")
    with torch.no_grad():
        out = model.eval()(x)
    expect(
        tuple(out.shape),
        (2, 1, 32, 32),
        "the output shape of UNet3(in_channels=1, classes=1, base_width=4) on a "
        "(2, 1, 32, 32) input",
        hint="return self.head(...) of the last decoder level; each up-step doubles H and W",
    )
    same_function(
        model,
        reference(in_channels=1, classes=1, depth=3, base_width=4),
        x,
        hint="max-pool before enc2, enc3 and the bottleneck; concatenate "
        "torch.cat([upsampled, skip], dim=1) with the upsampled map first",
    )
    kwargs = {"in_channels": 3, "classes": 2, "base_width": 2}
    train_shape(student, (2, 3, 16, 8), (2, 2, 16, 8), what="UNet3(3, 2, width 2)", **kwargs)


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
        test=test_double_conv,
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
        test=test_unet3,
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
        hint="Dice is twice the overlap divided by the two sizes added up; an empty true "
        "mask has no Dice: NaN",
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
