"""Lab 06 (FV block, PASPP, deep supervision; report 004) exercises: the FV block's
contrast-enhancement gate, PASPP's progressive merge, and the deep-supervision loss.

Modules are checked by behaviour against labkit's own blocks (``labkit.models.fvpaspp``):

* ``ContrastGate``: labkit's ``FVBlock(C, gate="ce").channel_gate`` is run, its two fully
  connected layers are copied into the student's (found in the order they run, as
  ``nn.Linear`` or 1x1 ``nn.Conv2d``), and both must give the same gate.
* ``PASPP``: the student writes ``forward`` only (the layers are given, with labkit's
  names), so labkit's ``PASPP`` weights load into it and both must give the same output.

``deep_supervision_loss`` is the student-facing function form of
``labkit.losses.DeepSupervisionLoss``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labkit.checks import Case, CheckFailed, Exercise, describe, expect, register
from labkit.exercises.lab04 import check_scalar_cases
from labkit.models.init import randomise_batch_norms


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


# ---------------------------------------------------------------------------- helpers
def build_student_module(cls: Any, *args: Any, what: str) -> nn.Module:
    """``cls(*args)``, refused with a clear message when it is not an ``nn.Module``."""
    obj = cls(*args)  # NotImplementedError from a stub propagates: "not implemented yet"
    if not isinstance(obj, nn.Module):
        raise CheckFailed(f"{what} should be an nn.Module, got {describe(obj)}")
    return obj


def fc_layers(module: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The fully connected layers (Linear, or 1x1 Conv2d) of ``module`` in the order they run."""
    order: list[nn.Module] = []

    def record(mod: nn.Module, _inputs: Any) -> None:
        if mod not in order:
            order.append(mod)

    hooks = [
        m.register_forward_pre_hook(record)
        for m in module.modules()
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
    ]
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return order


def _fc_shape(m: nn.Module) -> tuple[int, int]:
    """(in, out) features of a Linear or 1x1 conv."""
    w = m.weight
    return int(w.shape[1]), int(w.shape[0])


def _describe_fcs(layers: list[nn.Module]) -> str:
    return ", ".join(f"FC {i} -> {o}" for i, o in map(_fc_shape, layers)) or "none"


# ---------------------------------------------------------------------------- tests
def _expect_shape(out: Any, shape: tuple[int, ...], what: str, hint: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what}: expected a tensor of shape {shape}, got {describe(out)}", hint)
    if tuple(out.shape) != shape:
        raise CheckFailed(
            f"{what}: expected an output of shape {shape}, got shape {tuple(out.shape)}", hint
        )


def test_contrast_gate(student: Any, reference: Any) -> None:
    # the grader tries other channel counts (an odd one: C // 2 rounds down) and shapes too
    for channels, shape in ((8, (3, 8, 6, 4)), (3, (2, 3, 3, 7))):
        _gate_matches(student, channels, shape)


def _gate_matches(student: Any, channels: int, shape: tuple[int, ...]) -> None:
    from labkit.models import FVBlock

    gate = build_student_module(student, channels, what=f"ContrastGate({channels})")
    x = torch.randn(2, channels, 5, 5, generator=torch.Generator().manual_seed(60))
    labkit_gate = FVBlock(channels, gate="ce").channel_gate
    expected_fcs, got_fcs = fc_layers(labkit_gate, x), fc_layers(gate, x)
    if list(map(_fc_shape, got_fcs)) != list(map(_fc_shape, expected_fcs)):
        raise CheckFailed(
            f"expected these fully connected layers, in this order: "
            f"{_describe_fcs(expected_fcs)}; yours runs: {_describe_fcs(got_fcs)}",
            "nn.Linear(C, C // 2) then nn.Linear(C // 2, 1): the CE gate ends in ONE number "
            "(an SE gate would end in C)",
        )
    with torch.no_grad():
        out = gate.eval()(x)
    _expect_shape(
        out,
        (2, 1, 1, 1),
        f"ContrastGate({channels}) on a (2, {channels}, 5, 5) input",
        "one gate per image: reshape the (B, 1) result with g[:, :, None, None] (or "
        "g.view(-1, 1, 1, 1)) so that it broadcasts over channels and pixels",
    )
    with torch.no_grad():
        for mine, theirs in zip(got_fcs, expected_fcs):
            mine.weight.copy_(theirs.weight.reshape(mine.weight.shape))
            if mine.bias is None:
                raise CheckFailed("expected the fully connected layers to have a bias")
            mine.bias.copy_(theirs.bias)
        for seed in (61, 62):
            f = 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
            expect(
                gate.eval()(f),
                labkit_gate.eval()(f)[:, :, None, None],
                "the gate values with labkit's weights copied into yours",
                atol=1e-5,
                hint="average pool over H and W (nn.AdaptiveAvgPool2d(1), or f.mean((2, 3))), "
                "FC, ReLU, FC, then sigmoid",
            )


def test_paspp(student: Any, reference: Any) -> None:
    channels = 16
    ref = reference(channels)
    randomise_batch_norms(ref)
    mine = build_student_module(student, channels, what=f"PASPP({channels})")
    theirs, yours = ref.state_dict(), mine.state_dict()
    missing, extra = sorted(set(theirs) - set(yours)), sorted(set(yours) - set(theirs))
    wrong = [k for k in set(theirs) & set(yours) if theirs[k].shape != yours[k].shape]
    if missing or extra or wrong:
        parts = [
            f"missing {', '.join(missing[:4])}" if missing else "",
            f"not expected {', '.join(extra[:4])}" if extra else "",
            f"other shapes for {', '.join(sorted(wrong)[:4])}" if wrong else "",
        ]
        raise CheckFailed(
            f"PASPP({channels}): expected the layers given in __init__ (branches, merge_small, "
            f"merge_large, fuse); yours differ: {'; '.join(p for p in parts if p)}",
            "keep __init__ as given and write forward only",
        )
    mine.load_state_dict(theirs)
    x = torch.randn(2, channels, 9, 9, generator=torch.Generator().manual_seed(63))
    with torch.no_grad():
        got, expected = mine.eval()(x), ref.eval()(x)
    hint = (
        "every branch sees the same input x; the first two branches' outputs are merged by "
        "merge_small, the last two by merge_large, and fuse merges the two results; each "
        "merge joins its inputs along the channel dimension, in branch order"
    )
    _expect_shape(
        got, (2, channels, 9, 9), f"PASPP({channels}) on a (2, {channels}, 9, 9) input", hint
    )
    expect(got, expected, "the output with labkit's weights loaded into yours", hint=hint)
    # other dilations (a keyword of the given __init__) and a non-square input
    ref = reference(8, dilations=(1, 3, 5, 7))
    randomise_batch_norms(ref, seed=1)
    mine = student(8, dilations=(1, 3, 5, 7))
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(1, 8, 7, 10, generator=torch.Generator().manual_seed(64))
    with torch.no_grad():
        got, expected = mine.eval()(x), ref.eval()(x)
    expect(
        got,
        expected,
        "PASPP(8, dilations=(1, 3, 5, 7)) on a (1, 8, 7, 10) input, with labkit's weights",
        hint=hint,
    )


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


def test_deep_supervision_loss(student: Any, reference: Any) -> None:
    check_scalar_cases(student, reference, deep_supervision_cases())


for _exercise in (
    Exercise(
        "06.ContrastGate",
        "FV block: the contrast-enhancement gate",
        "ContrastGate",
        "labkit.exercises.lab06:ContrastGate",
        test=test_contrast_gate,
        points=2,
        hint="one gate per image: average each channel over the image, squeeze the C "
        "averages into ONE number with two fully connected layers, and make it a weight in "
        "(0, 1) with a sigmoid",
        hints=(
            "the layers go C -> C // 2 -> (ReLU) -> 1; the gate must have the shape "
            "(B, 1, 1, 1) so that it multiplies every channel and pixel",
        ),
    ),
    Exercise(
        "06.PASPP",
        "PASPP: the progressive merge",
        "PASPP",
        "labkit.models.fvpaspp:PASPP",
        test=test_paspp,
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
        test=test_deep_supervision_loss,
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
