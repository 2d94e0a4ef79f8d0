"""Lab 07 (report 004 on CT volumes) exercises: HU windowing for both intensity conventions,
the patch sampler's positive share, per-subject Dice over a volume, and the 3-D CE gate.

* ``window_ct`` and ``subject_dice`` are compared with labkit's on hand-made volumes.
* ``sample_patch_starts`` is random, so it is checked by behaviour, measured from the raw
  starts where the verdict is reached (never in the student's process): shape and dtype,
  every patch inside the volume, the first ``round(n * share)`` patches holding infection,
  the rest uniform, different for different generator seeds, the same for the same seed.
* ``ContrastGate3d``: the student's gate and labkit's get the same weights in their two
  fully connected layers (matched in the order they run, as ``nn.Linear`` or 1x1x1
  ``nn.Conv3d``; ``labkit.checks.modules``) and must give the same gate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labkit.checks import Case, CheckFailed, Exercise, describe, register
from labkit.checks.modules import output_probe
from labkit.checks.probes import Probe, report, run_seed
from labkit.ct.scores import volume_scores
from labkit.exercises.lab02 import SOFT_OVERLAP


# ---------------------------------------------------------------------------- references
def subject_dice(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Dice of one subject, counted over every voxel of its volume: ``2 TP / (2 TP + FP + FN)``.

    NaN when the truth is empty (labkit's empty-mask policy).
    """
    return volume_scores(pred, truth)["dice"]


class ContrastGate3d(nn.Module):
    """Report 004's contrast-enhancement gate in 3-D: ONE number in (0, 1) per volume.

    global average pool over (D, H, W) -> FC C -> C/2 -> ReLU -> FC C/2 -> 1 -> sigmoid.

    Shape:
        ``(B, C, D, H, W)`` -> ``(B, 1, 1, 1, 1)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = max(1, channels // 2)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Linear(channels, half)
        self.fc2 = nn.Linear(half, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = self.pool(f).flatten(1)  # (B, C): the mean of each channel over the volume
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # (B, 1)
        return g[:, :, None, None, None]  # (B, 1, 1, 1, 1): broadcasts over C, D, H, W


# ---------------------------------------------------------------------------- window_ct
def window_cases() -> list[Case]:
    hu = torch.tensor([[[-3024.0, -1250.0, -1000.0], [-500.0, 0.0, 250.0], [400.0, 40.0, -850.0]]])
    g = torch.Generator().manual_seed(70)
    raw = torch.randint(-1400, 600, (4, 5, 3), generator=g).to(torch.int16)
    windowed = torch.tensor([[[0, 51, 102], [153, 204, 255]]], dtype=torch.uint8)
    return [
        Case((hu, "hu"), label="raw HU from -3024 (outside the scanner's view) to 400"),
        Case((raw, "hu"), label="a 4x5x3 int16 HU volume"),
        Case((windowed, "windowed"), label="a uint8 volume already windowed to 0-255"),
        Case((windowed.float(), "windowed"), label="the same as float32"),
    ]


# ---------------------------------------------------------------------------- subject_dice
def _volume(shape: tuple[int, ...], boxes: list[tuple[slice, ...]]) -> torch.Tensor:
    v = torch.zeros(shape, dtype=torch.uint8)
    for box in boxes:
        v[box] = 1
    return v


def subject_dice_cases() -> list[Case]:
    s = slice
    truth = _volume((6, 6, 4), [(s(1, 4), s(1, 4), s(0, 2))])  # 18 voxels
    half = _volume((6, 6, 4), [(s(1, 4), s(1, 4), s(0, 1))])  # 9 of them: Dice 2*9/27
    shifted = _volume((6, 6, 4), [(s(2, 5), s(1, 4), s(0, 2))])  # 12 shared: Dice 24/36
    empty = torch.zeros(6, 6, 4, dtype=torch.uint8)
    return [
        Case((truth, truth), label="a perfect prediction (Dice 1)"),
        Case((half, truth), label="half of the infection found, no false positive (Dice 2/3)"),
        Case((shifted, truth), label="a prediction shifted by one voxel (Dice 2/3)"),
        Case((empty, truth), label="nothing predicted (Dice 0)"),
        Case((truth.bool(), shifted.bool()), label="bool volumes"),
        Case((half, empty), label="no infection in the truth (NaN: not scored)"),
    ]


# ---------------------------------------------------------------------------- sampler
# The sampler is random, so it is judged by behaviour, measured where the verdict is reached
# (the notebook's check, or the grader's own process): the student's process only reports
# the starts it drew. A 20x18x12 volume whose only infection is a 2x2x2 cube at the far
# corner: a uniform 8x6x4 patch holds it with probability (3/13)(3/13)(3/9) = 1.8 %.
PATCH = (8, 6, 4)


def _sampler_volume() -> tuple[tuple[int, int, int], torch.Tensor]:
    mask = torch.zeros(20, 18, 12, dtype=torch.uint8)
    mask[17:19, 15:17, 9:11] = 1
    return tuple(mask.shape), mask.nonzero()


def sampler_probe(share: float, n: int, tag: str, infected: bool = True) -> Probe:
    """``n`` patches at ``share`` drawn with three secret generator seeds, and the first seed
    again; judged by ``judge_sampler`` from the raw starts alone."""
    seeds = [run_seed(f"{tag} {i}") for i in range(3)]
    where = "a volume without infection" if not infected else f"positive_share={share}"

    def run(fn: Any) -> dict:
        shape, positives = _sampler_volume()
        positives = positives if infected else positives[:0]

        def draw(seed: int) -> Any:
            return fn(shape, positives, PATCH, n, share, torch.Generator().manual_seed(seed))

        return report({"calls": [draw(s) for s in seeds], "again": draw(seeds[0])}, 0)

    def expect(reference: Any, seen: Any) -> int:
        judge_sampler(seen, share, n, infected)
        return 0

    return Probe(
        f"{n} patches of 8x6x4 in a 20x18x12 volume, {where}, drawn with three generator seeds",
        run,
        expect=expect,
    )


def judge_sampler(seen: Any, share: float, n: int, infected: bool) -> None:
    """Raise ``CheckFailed`` unless the reported starts behave as the exercise asks: integer
    ``(n, 3)`` starts inside the volume, the first ``round(n * share)`` holding infection,
    the rest uniform (as often on infection as a uniform patch is, and spread over the
    range), different for different seeds, the same for the same seed."""
    shape, positives = _sampler_volume()
    highest = torch.tensor(shape) - torch.tensor(PATCH)
    calls = seen["calls"] if isinstance(seen, dict) else None
    what = f"{n} patches of 8x6x4 in a 20x18x12 volume, positive_share={share}"
    if not isinstance(calls, list) or len(calls) != 3:
        raise CheckFailed("the sampler's starts did not come back")
    for starts in [*calls, seen["again"]]:
        if not isinstance(starts, torch.Tensor):
            raise CheckFailed(f"expected a tensor of patch starts, got {describe(starts)}")
        if tuple(starts.shape) != (n, 3):
            raise CheckFailed(f"{what}: expected starts of shape ({n}, 3), got {tuple(starts.shape)}",
                              "one row (x, y, z) per patch")  # fmt: skip
        if starts.is_floating_point() or starts.is_complex() or starts.dtype == torch.bool:
            raise CheckFailed(f"{what}: expected integer starts, got {starts.dtype}", "use .long()")
        if not bool(((starts >= 0) & (starts <= highest)).all()):
            raise CheckFailed(f"{what}: a patch sticks out of the volume",
                              "clamp each start into [0, side - patch] on its axis")  # fmt: skip
    if not torch.equal(calls[0].long(), seen["again"].long()):
        raise CheckFailed("the starts drawn twice with the same generator seed differ",
                          "draw every random number from generator")  # fmt: skip
    if n >= 4 and any(torch.equal(a, b) for i, a in enumerate(calls) for b in calls[i + 1 :]):
        raise CheckFailed(f"{what}: three different generator seeds gave the same starts",
                          "the patches must be random: draw them from generator")  # fmt: skip
    n_pos = round(n * share) if infected else 0
    hits = [_holds_infection(c.long(), positives) for c in calls]
    for held in hits:
        if not bool(held[:n_pos].all()):
            raise CheckFailed(
                f"{what}: expected the first {n_pos} patches to contain infection; "
                f"{int(held[:n_pos].sum())} do",
                "pick a random infection voxel v and an offset o in [0, patch): start = v - o, "
                "then clamp; the voxel stays inside the patch",
            )
    uniform = torch.cat([c.long()[n_pos:] for c in calls])
    if len(uniform) >= 12:
        _judge_uniform(uniform, torch.cat([h[n_pos:] for h in hits]), highest, what, infected)


def _holds_infection(starts: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """``(n,)`` bool: does each patch hold an infection voxel?"""
    if len(positives) == 0:
        return torch.zeros(len(starts), dtype=torch.bool)
    inside = (positives[None] >= starts[:, None]) & (
        positives[None] < starts[:, None] + torch.tensor(PATCH)
    )
    return inside.all(-1).any(-1)  # fmt: skip


def _judge_uniform(
    uniform: torch.Tensor, held: torch.Tensor, highest: torch.Tensor, what: str, infected: bool
) -> None:
    """The patches after the positive ones: spread over the range, rarely on the infection."""
    m = len(uniform)
    p = 3 / 13 * 3 / 13 * 3 / 9 if infected else 0.0  # a uniform patch holds the cube
    allowed = m * p + 5 * (m * p * (1 - p)) ** 0.5 + 2
    if int(held.sum()) > allowed:
        raise CheckFailed(
            f"{what}: {int(held.sum())} of the {m} patches after the positive ones hold "
            f"infection; uniform patches would hold it about {m * p:.0f} times",
            "only the first round(n * positive_share) patches are placed around infection; "
            "the others start anywhere in [0, side - patch]",
        )
    side = highest.double() + 1  # starts take the values 0 .. highest on each axis
    mean, sd = highest.double() / 2, ((side**2 - 1) / 12).sqrt()
    starts = uniform.double()
    for axis in range(3 if m >= 30 else 0):  # spread over the whole range (m >= 30 to judge)
        got_mean, got_sd = float(starts[:, axis].mean()), float(starts[:, axis].std())
        seen = len(torch.unique(uniform[:, axis]))
        wanted = min(int(side[axis]), m) * 0.6
        if (
            abs(got_mean - float(mean[axis])) > 5 * float(sd[axis]) / m**0.5 + 0.5
            or not 0.6 * float(sd[axis]) <= got_sd <= 1.4 * float(sd[axis]) + 0.5
            or seen < wanted
        ):
            raise CheckFailed(
                f"{what}: the uniform patches' {'xyz'[axis]} starts (mean {got_mean:.1f}, spread "
                f"{got_sd:.1f}, {seen} different values) are not spread over 0 .. "
                f"{int(highest[axis])}: uniform starts would average about {float(mean[axis]):.1f} "
                f"with a spread of about {float(sd[axis]):.1f}",
                "a uniform start is drawn over the whole range [0, side - patch] of each axis",
            )


def sampler_probes() -> list[Probe]:
    """Three shares and a volume without infection, each with three generator seeds."""
    return [sampler_probe(share, 40, f"07 sampler {share}") for share in (0.5, 1.0, 0.25)] + [
        sampler_probe(0.5, 6, "07 sampler empty", infected=False)
    ]


# ---------------------------------------------------------------------------- CE gate 3-D
# as lab 06's: from the idea, through what to look at, to the sizes and shape; never code
GATE_3D_HINT = (
    "with the same weights in its two layers your gate differs from labkit's: check what "
    "is averaged (each channel over all its voxels: C numbers per volume) and the order of "
    "the steps (first layer, ReLU, second layer, sigmoid)"
)


def gate_3d_probes() -> list[Probe]:
    """The gate with the same FC weights as labkit's, for two channel counts and shapes."""
    return [
        output_probe("ContrastGate3d", shape, channels, tag=f"07 gate {channels}", layout="fc",
                     scale=3.0, hint=GATE_3D_HINT)
        for channels, shape in ((8, (2, 8, 4, 5, 3)), (6, (3, 6, 2, 2, 6)))
    ]  # fmt: skip


for _exercise in (
    Exercise(
        "07.window_ct",
        "HU windowing for both intensity conventions",
        "window_ct",
        "labkit.ct.volume:window_ct",
        cases=window_cases,
        points=2,
        hint="both conventions must end on one scale where 0 means -1250 HU and 1 means "
        "250 HU; a raw HU volume still has to be cut to that window, a windowed one was "
        "cut before it was saved",
        hints=(
            "'hu': clamp to the window, shift by 1250 and divide by the window's width, 1500; "
            "'windowed': divide by 255; convert to float32 first",
        ),
    ),
    Exercise(
        "07.sample_patch_starts",
        "The patch sampler's positive share",
        "sample_patch_starts",
        "labkit.ct.patches:sample_patch_starts",
        probes=sampler_probes,
        points=2,
        hint="a positive patch is built around a voxel that is infected: choose one of the "
        "positives at random, place it at a random position inside the patch, and keep "
        "the patch inside the volume",
        hints=(
            "start = voxel - offset, the offset drawn in [0, patch) per axis, then clamp the "
            "start between 0 and side - patch; the uniform patches start anywhere in that "
            "range; draw every number from the generator",
        ),
    ),
    Exercise(
        "07.subject_dice",
        "Per-subject Dice over a whole volume",
        "subject_dice",
        "labkit.exercises.lab07:subject_dice",
        absent=(
            "labkit.ct.scores:volume_scores",
            "labkit.metrics:dice",
            "labkit.metrics:iou",
            SOFT_OVERLAP,
        ),
        cases=subject_dice_cases,
        points=1,
        hint="one Dice for the whole subject: count agreements over every voxel of the "
        "volume at once, not slice by slice; an empty truth has no Dice (labkit's policy)",
        hints=(
            "Dice = 2 TP / (2 TP + FP + FN) with the counts over all voxels; return "
            "float('nan') when the truth holds no infection voxel",
        ),
    ),
    Exercise(
        "07.ContrastGate3d",
        "The 3-D contrast-enhancement gate",
        "ContrastGate3d",
        "labkit.exercises.lab07:ContrastGate3d",
        probes=gate_3d_probes,
        absent=("labkit.models.fvpaspp:FVBlock",),
        points=2,
        hint="as lab 06's gate, over a volume: average each channel over all its voxels, "
        "squeeze the C averages into ONE number with two fully connected layers, sigmoid",
        hints=(
            "the layers go C -> C // 2 -> (ReLU) -> 1, which gives (B, 1); give the gate the "
            "shape (B, 1, 1, 1, 1) so that it multiplies every channel and voxel",
        ),
    ),
):
    register(_exercise)
