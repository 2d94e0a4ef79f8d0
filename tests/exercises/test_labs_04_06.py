"""Labs 04-06: wrong answers, references, what the notebooks teach, lab 04's weights.

* a typical wrong implementation of each exercise fails with a message that says what was
  expected and what came back;
* the references defined for students agree with labkit's own implementations, and the
  behaviour the notebooks teach holds (a frozen encoder does not move in a real training
  step, but its batch norms do; the lung constraint leaves no probability outside the lung);
* every trained model is recorded beside one of its report's figures;
* lab 04's weight loading: a local WEIGHTS_PATH file is really loaded, and offline the
  notebook's builder says so and goes on.

What every lab's exercises and notebooks share is tested in test_labs.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _labs import SOURCES, assert_check_fails, exercise_ids, wrong_ids
from torch import nn

import labkit as lk
import labkit.exercises  # noqa: F401  (registers the course's exercises)
from labkit.course.build import build_lab
from labkit.exercises import lab04, lab05, lab06
from labkit.models import ConvBNReLU

pytestmark = pytest.mark.usefixtures("fresh_records")


@pytest.mark.parametrize("lab", ["04", "05", "06"])
def test_every_trained_model_is_recorded_beside_a_report_figure(lab):
    """Each lab reports its results with record_result, keyed to this lab's report figures."""
    source = SOURCES[lab].read_text()
    assert "S.record_result(" in source
    keys = {f.key for f in lk.runs.LABS[lab].figures}
    used = {k for k in keys if f'"{k}"' in source}
    if f'lk.runs.LABS["{lab}"].ablation' in source:  # lab 06: its rows name their figures
        used |= {key for _, key in lk.runs.LABS[lab].ablation.values()} & keys
    assert used, f"lab {lab} links no result to labkit.runs.LABS[{lab!r}].figures"


# ---------------------------------------------------------------------------- wrong answers
def _naive_focal(logits, target, gamma=2.0):  # log(softmax): -inf when a pixel is sure and wrong
    p_t = torch.softmax(logits, dim=1).gather(1, target.long())
    return (-((1 - p_t) ** gamma) * torch.log(p_t)).mean()


def _cross_entropy(logits, target, gamma=2.0):  # forgot the focal factor
    return (-torch.log_softmax(logits, dim=1).gather(1, target.long())).mean()


def _float_focal(logits, target, gamma=2.0):  # .item(): the loss cannot be back-propagated
    return lk.losses.focal_loss(logits, target, gamma).item()


def _freeze_everything(model, trainable):
    for p in model.parameters():
        p.requires_grad_(trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _count_tensors(model, trainable):  # counts parameter tensors, not numbers
    for p in model.encoder.parameters():
        p.requires_grad_(trainable)
    return sum(1 for p in model.parameters() if p.requires_grad)


def _batch_dice_combined(logits, target):  # one Dice over the whole batch, not per image
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return 0.5 * dice + 0.3 * bce + 0.2 * lk.losses.focal_loss(logits, target)


class _SEGate(nn.Module):  # squeeze-and-excitation: one gate per channel
    def __init__(self, channels):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, channels // 2), nn.Linear(channels // 2, channels)

    def forward(self, f):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(f.mean((2, 3))))))[:, :, None, None]


class _MaxPoolGate(nn.Module):  # max instead of average pooling
    def __init__(self, channels):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, channels // 2), nn.Linear(channels // 2, 1)

    def forward(self, f):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(f.amax((2, 3))))))[:, :, None, None]


class _FlatGate(_MaxPoolGate):  # right values, wrong shape (B, 1)
    def forward(self, f):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(f.mean((2, 3))))))


class _ParallelPASPP(lk.models.PASPP):  # DeepLab-style: all four branches fused at once
    def forward(self, x):
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


class _OwnLayersPASPP(nn.Module):  # changed the given __init__
    def __init__(self, channels):
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(channels, channels, kernel_size=1)])

    def forward(self, x):
        return self.branches[0](x)


def _mean_over_all_heads(outputs, target, base_loss, final_weight=0.5):
    if isinstance(outputs, torch.Tensor):
        return base_loss(outputs, target)
    return torch.stack([base_loss(o, target) for o in outputs]).mean()


def _sum_of_aux_heads(outputs, target, base_loss, final_weight=0.5):
    if isinstance(outputs, torch.Tensor):
        return base_loss(outputs, target)
    final, *aux = outputs
    return final_weight * base_loss(final, target) + (1 - final_weight) * sum(
        base_loss(a, target) for a in aux
    )


def _list_only(outputs, target, base_loss, final_weight=0.5):  # crashes on an eval-mode tensor
    final, *aux = outputs
    aux_loss = torch.stack([base_loss(a, target) for a in aux]).mean()
    return final_weight * base_loss(final, target) + (1 - final_weight) * aux_loss


WRONG = [
    ("04.imagenet_normalize", lambda: (lambda x: x.float().repeat(1, 3, 1, 1)),
     "on 2 grey uint8 images (values 0-255): wrong values: expected values in [-2.118, 2.64], "
     "got values in [0, 255]"),
    ("04.imagenet_normalize", lambda: (lambda x: lk.data.imagenet_normalize(x)[:, :1]),
     "expected shape (2, 3, 4, 4), got shape (2, 1, 4, 4)"),
    ("04.set_encoder_trainable", lambda: _freeze_everything,
     "set_encoder_trainable(model, False) should return 1,248,738 trainable parameters, got "
     "an int 0"),
    ("04.set_encoder_trainable", lambda: _count_tensors,
     "should return 1,248,738 trainable parameters, got an int 31"),
    ("04.focal_loss", lambda: _naive_focal,
     "the loss of very confident logits (infection logit 120 above background) that are wrong on 3 of "
     "4 pixels: expected 90, got inf"),
    ("04.focal_loss", lambda: _cross_entropy,
     "the loss of random 2-class logits (2, 2, 6, 6): expected 0.868, got 1.176"),
    ("04.focal_loss", lambda: _float_focal,
     "expected a torch tensor holding one number (so that loss.backward() works), got a float"),
    ("05.infection_input", lambda: (lambda image, lung: torch.cat([lung.to(image.dtype), image], 1)),
     "on an RGB batch (2, 3, 4, 4) and a float lung mask (2, 1, 4, 4): wrong values"),
    ("05.infection_input", lambda: (lambda image, lung: image),
     "expected shape (2, 4, 4, 4), got shape (2, 3, 4, 4)"),
    ("05.combined_loss", lambda: _batch_dice_combined,
     "the loss of random logits of 3 images (3, 1, 6, 6): expected 0.7007, got 0.7044"),
    ("05.combined_loss", lambda: (lambda logits, target: lab05.combined_loss(logits, target) * 3),
     "expected 0.7007, got 2.102"),
    ("05.constrain_to_lung", lambda: (lambda probs, lung: probs * (lung == 0)),
     "on probabilities (2, 1, 5, 5) and a float 0/1 lung mask: wrong values"),
    ("05.constrain_to_lung", lambda: (lambda probs, lung: (probs * lung) > 0.5),
     "expected dtype torch.float32, got dtype torch.bool"),
    ("05.fp_outside_lung", lambda: (lambda p, t, lung: ((p > 0) & ~(lung > 0)).flatten(1).sum(1)),
     "expected values in [3, 12], got values in [4, 12]; the largest difference is 1 at index "
     "(0,) (expected 3, got 4)"),
    ("05.fp_outside_lung", lambda: (lambda p, t, lung: ((p > 0) & ~(lung > 0)).sum()),
     "expected shape (2,), got shape ()"),
    ("06.ContrastGate", lambda: _SEGate,
     "expected these fully connected layers, in this order: FC 8 -> 4, FC 4 -> 1; yours runs: "
     "FC 8 -> 4, FC 4 -> 8"),
    ("06.ContrastGate", lambda: _MaxPoolGate,
     "the same weights in yours and labkit's: wrong values"),
    ("06.ContrastGate", lambda: _FlatGate,
     "expected shape (3, 1, 1, 1), got shape (3, 1)"),
    ("06.PASPP", lambda: _ParallelPASPP,
     "the same weights in yours and labkit's: wrong values"),
    ("06.PASPP", lambda: _OwnLayersPASPP,
     "expected the layers given in __init__; yours differ: missing "),
    ("06.deep_supervision_loss", lambda: _mean_over_all_heads,
     "the loss of a final output and 2 auxiliary heads: expected 1.271, got 1.246"),
    ("06.deep_supervision_loss", lambda: _sum_of_aux_heads,
     "the loss of a final output and 2 auxiliary heads: expected 1.271, got 1.869"),
    ("06.deep_supervision_loss", lambda: _list_only, "your function raised"),
]  # fmt: skip


@pytest.mark.parametrize("exercise_id, make_wrong, message", WRONG, ids=wrong_ids(WRONG))
def test_wrong_implementation_fails_with_expected_vs_got(exercise_id, make_wrong, message, capsys):
    assert_check_fails(exercise_id, make_wrong(), message, capsys)


def test_every_exercise_has_a_wrong_answer_test():
    assert {w[0] for w in WRONG} == exercise_ids("04", "05", "06")


# ---------------------------------------------------------------------------- references
def test_constrain_to_lung_matches_the_cascades_logit_masking():
    from labkit.models.cascade import mask_outside_lung

    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 1, 16, 16, generator=g)
    lung = (torch.rand(4, 1, 16, 16, generator=g) > 0.5).float()
    expected = lk.metrics.probabilities(mask_outside_lung(logits, lung))
    got = lab05.constrain_to_lung(torch.sigmoid(logits), lung)
    assert torch.equal(got, expected)
    assert got[lung == 0].max() == 0 and torch.equal(got[lung > 0], torch.sigmoid(logits)[lung > 0])


def test_fp_outside_lung_matches_a_numpy_oracle():
    rng = np.random.default_rng(1)
    pred, truth, lung = (rng.random((5, 1, 12, 12)) > q for q in (0.6, 0.8, 0.4))
    expected = np.array([(p & ~t & ~m).sum() for p, t, m in zip(pred, truth, lung)])
    got = lab05.fp_outside_lung(*map(torch.from_numpy, (pred, truth, lung)))
    assert got.dtype == torch.int64 and got.tolist() == expected.tolist()


def test_combined_loss_is_report_003s_weighted_sum():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 1, 8, 8, generator=g)
    target = (torch.rand(3, 1, 8, 8, generator=g) > 0.6).float()
    dice = lk.losses.dice_loss(logits, target)
    bce = lk.losses.bce_loss(logits, target)
    focal = lk.losses.focal_loss(logits, target, gamma=2.0)
    expected = 0.5 * dice + 0.3 * bce + 0.2 * focal
    assert lab05.combined_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_contrast_gate_reference_equals_labkits_fv_block_gate():
    gate, block = lab06.ContrastGate(12), lk.models.FVBlock(12, gate="ce")
    fc = [m for m in block.channel_gate if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for mine, theirs in zip((gate.fc1, gate.fc2), fc):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    f = torch.randn(3, 12, 5, 7)
    assert torch.allclose(gate(f), block.channel_gate(f)[:, :, None, None], atol=1e-6)


def test_deep_supervision_loss_weights_final_half_and_aux_half():
    base = lk.losses.BCEDiceLoss()
    g = torch.Generator().manual_seed(3)
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.7).float()
    outs = [torch.randn(2, 1, 8, 8, generator=g) for _ in range(3)]
    losses = [base(o, y).item() for o in outs]
    got = lab06.deep_supervision_loss(outs, y, base).item()
    assert got == pytest.approx(0.5 * losses[0] + 0.5 * (losses[1] + losses[2]) / 2, rel=1e-6)


def test_a_frozen_encoder_keeps_its_weights_in_training_but_not_its_batch_norm_statistics():
    """What lab 04 teaches about freezing, checked in a real training step with lk.fit."""
    model = lk.build_model("unet-efficientnet-b0", in_channels=3, classes=2)
    trainable = lab04.set_encoder_trainable(model, False)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if "encoder" not in n)
    before = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = (torch.rand(4, 1, 32, 32, generator=g) > 0.7).float()
    lk.fit(model, [(x, y)], [(x, y)], epochs=1, lr=1e-3, loss="focal_jaccard", progress=False)
    after = model.state_dict()
    params = {n for n, _ in model.named_parameters()}
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("encoder.") and k in params for k in moved)
    assert any(k.startswith("decoder.") and k in params for k in moved)
    assert any(k.startswith("encoder.") and k.endswith("running_mean") for k in moved)


# ---------------------------------------------------------------------------- lab 04 weights
def _build_unet_function(tmp_path: Path, weights_path):
    """Lab 04's build_unet as the built solution notebook defines it."""
    _, _, solution = build_lab(SOURCES["04"], tmp_path)
    cell = next(c for c in solution.cells if "def build_unet(" in c.source)
    definition = cell.source.split("\npretrained_r34, weights_source =")[0]
    ns = {"lk": lk, "WEIGHTS_PATH": weights_path, "S": SimpleNamespace(seed=0)}  # the set-up
    exec(definition, ns)
    return ns["build_unet"]


def test_lab04_loads_a_local_weights_file(tmp_path):
    donor = lk.build_model("unet-resnet34", in_channels=3, classes=2)
    path = tmp_path / "resnet34-encoder.pt"
    torch.save(donor.encoder.state_dict(), path)
    build_unet = _build_unet_function(tmp_path, path)
    model, source = build_unet("unet-resnet34", True, path)
    assert source == f"ImageNet, from the local file {path}"
    for key, value in donor.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    fresh, source = build_unet("unet-resnet34", False)
    assert source == "random initialisation"
    assert not torch.equal(fresh.encoder.conv1.weight, donor.encoder.conv1.weight)


def test_lab04_without_internet_says_so_and_returns_no_model(tmp_path, monkeypatch):
    import huggingface_hub.constants

    (tmp_path / "hub").mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network at all
    build_unet = _build_unet_function(tmp_path, None)
    model, message = build_unet("unet-resnet34", True, None)
    assert model is None
    assert "could not download the ImageNet weights" in message and "weights_path" in message
