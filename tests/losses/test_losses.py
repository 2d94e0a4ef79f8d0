"""Losses against hand-computed values, on tiny tensors, including empty masks."""

from __future__ import annotations

import math

import pytest
import torch

from labkit import losses as L


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def img(values) -> torch.Tensor:
    """A (1, 1, H, W) float64 tensor from nested lists."""
    return torch.tensor(values, dtype=torch.float64)[None, None]


# --- hand-computed values -----------------------------------------------------------------


def test_bce_matches_hand_computation():
    z = img([[0.0, 2.0], [-1.0, 3.0]])
    y = img([[1, 0], [0, 1]])
    # -log sigmoid(z) = softplus(-z) for y = 1; -log(1 - sigmoid(z)) = softplus(z) for y = 0
    expected = (softplus(0) + softplus(2) + softplus(-1) + softplus(-3)) / 4
    assert L.bce_loss(z, y).item() == pytest.approx(expected, rel=1e-12)
    # pos_weight multiplies only the infection pixels' terms
    weighted = (3 * softplus(0) + softplus(2) + softplus(-1) + 3 * softplus(-3)) / 4
    assert L.bce_loss(z, y, pos_weight=3.0).item() == pytest.approx(weighted, rel=1e-12)


def test_mse_is_on_probabilities():
    z = img([[logit(0.8), logit(0.3)]])
    y = img([[1, 1]])
    assert L.mse_loss(z, y).item() == pytest.approx((0.2**2 + 0.7**2) / 2, rel=1e-9)


def test_dice_is_per_image_then_averaged():
    p = [[0.8, 0.5], [0.2, 0.5]]
    z = torch.cat(
        [img([[logit(v) for v in row] for row in p]), torch.zeros(1, 1, 2, 2, dtype=torch.float64)]
    )
    y = torch.cat([img([[1, 1], [0, 0]]), torch.zeros(1, 1, 2, 2, dtype=torch.float64)])
    # image 0: inter 1.3, sum p 2.0, sum y 2 -> 1 - (2.6 + 1) / (4 + 1) = 0.28
    # image 1: empty mask, P = 4 * 0.5 = 2 -> P / (P + 1) = 2/3
    expected = (0.28 + 2 / 3) / 2
    assert L.dice_loss(z, y).item() == pytest.approx(expected, rel=1e-9)
    # a batch-pooled Dice would give 1 - 3.6 / 7 instead: make sure we are not computing that
    assert L.dice_loss(z, y).item() != pytest.approx(1 - 3.6 / 7, rel=1e-3)


@pytest.mark.parametrize(
    "z, expected",
    [
        ([[-100.0, -100.0], [-100.0, -100.0]], 0.0),  # empty truth, empty prediction
        ([[100.0, -100.0], [-100.0, -100.0]], 0.5),  # one predicted pixel: 1 / (1 + 1)
        ([[100.0, 100.0], [100.0, 100.0]], 0.8),  # four predicted pixels: 4 / (4 + 1)
    ],
)
def test_dice_on_empty_mask_is_predicted_area_over_area_plus_smooth(z, expected):
    y = torch.zeros(1, 1, 2, 2)
    assert L.dice_loss(img(z), y).item() == pytest.approx(expected, abs=1e-12)


def test_all_ones_mask_predicted_exactly_costs_nothing():
    z, y = torch.full((2, 1, 3, 3), 100.0), torch.ones(2, 1, 3, 3)
    for name in L.LOSSES:
        assert L.build_loss(name)(z, y).item() == pytest.approx(0.0, abs=1e-6), name


def test_focal_matches_hand_computation():
    z = img([[0.0, logit(0.9)]])
    y = img([[1, 0]])
    # pixel 0: p_t = 0.5 -> 0.25 * log 2 ; pixel 1: background with p = 0.9 -> p_t = 0.1
    t0, t1 = 0.5**2 * math.log(2), 0.9**2 * -math.log(0.1)
    assert L.focal_loss(z, y).item() == pytest.approx((t0 + t1) / 2, rel=1e-9)
    assert L.focal_loss(z, y, alpha=0.25).item() == pytest.approx(
        (0.25 * t0 + 0.75 * t1) / 2, rel=1e-9
    )
    # gamma = 0 and no alpha is plain BCE
    assert L.focal_loss(z, y, gamma=0.0).item() == pytest.approx(L.bce_loss(z, y).item(), rel=1e-12)


def test_categorical_focal_jaccard_matches_a_softmax_one_hot_oracle():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 5, 4, dtype=torch.float64) * 3
    y = (torch.rand(3, 1, 5, 4) > 0.6).double()
    y[1] = 0  # one empty mask
    onehot = torch.cat([1 - y, y], 1)  # (B, 2, H, W): background, infection
    logp = torch.log_softmax(logits, 1)
    alpha = torch.tensor([0.75, 0.25], dtype=torch.float64).view(1, 2, 1, 1)
    focal = -(onehot * alpha * (1 - logp.exp()) ** 2 * logp).sum(1).mean()
    p = logp.exp()
    inter, union = (p * onehot).sum((2, 3)), (p + onehot - p * onehot).sum((2, 3))
    jaccard = (1 - (inter + 1) / (union + 1)).mean()  # per image and class, then averaged
    loss = L.FocalJaccardLoss(alpha=0.25)(logits, y)
    assert loss.item() == pytest.approx(focal.item() + jaccard.item(), rel=1e-9)


def test_jaccard_with_background_on_empty_mask():
    z = img([[100.0, -100.0], [-100.0, -100.0]])  # P = 1 predicted pixel, N = 4
    y = torch.zeros(1, 1, 2, 2)
    assert L.jaccard_loss(z, y).item() == pytest.approx(0.5, abs=1e-12)
    assert L.jaccard_loss(z, y, include_background=True).item() == pytest.approx(
        0.5 * (1 / 2 + 1 / 5), abs=1e-12
    )


def test_composite_weights():
    torch.manual_seed(1)
    z, y = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    d, b, f = L.dice_loss(z, y), L.bce_loss(z, y), L.focal_loss(z, y)
    torch.testing.assert_close(L.DiceBCELoss()(z, y), 0.7 * d + 0.3 * b)
    torch.testing.assert_close(L.CombinedLoss()(z, y), 0.5 * d + 0.3 * b + 0.2 * f)
    torch.testing.assert_close(L.BCEDiceLoss()(z, y), 0.5 * b + d)
    torch.testing.assert_close(L.build_loss("dice_bce", dice_weight=1.0, bce_weight=0.0)(z, y), d)


# --- two-channel heads, dtypes, numerics --------------------------------------------------


@pytest.mark.parametrize("name", sorted(L.LOSSES))
def test_two_channel_head_equals_logit_difference(name):
    torch.manual_seed(2)
    logits = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    y = (torch.rand(2, 1, 4, 4) > 0.5).double()
    z = logits[:, 1:2] - logits[:, 0:1]  # softmax(l)[1] = sigmoid(l1 - l0)
    loss = L.build_loss(name)
    torch.testing.assert_close(loss(logits, y), loss(z, y))


@pytest.mark.parametrize("name", sorted(L.LOSSES))
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("mask", ["empty", "full", "mixed"])
def test_extreme_logits_give_finite_loss_and_gradient(name, channels, mask):
    # +-100 logits: confidently right and confidently wrong pixels, in both heads
    z = (torch.arange(2 * channels * 16) % 3 == 0).float().view(2, channels, 4, 4) * 200 - 100
    z.requires_grad_(True)
    masks = {"empty": torch.zeros(4, 4), "full": torch.ones(4, 4), "mixed": torch.eye(4)}
    y = masks[mask].expand(2, 1, 4, 4)
    loss = L.build_loss(name, deep_supervision=True)([z, -z], y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_targets_as_uint8_bool_float_agree_and_bf16_logits_are_upcast():
    torch.manual_seed(3)
    z = torch.randn(2, 1, 8, 8)
    y = torch.rand(2, 1, 8, 8) > 0.5
    loss = L.CombinedLoss()
    ref = loss(z, y.float())
    torch.testing.assert_close(loss(z, y), ref)
    torch.testing.assert_close(loss(z, y.to(torch.uint8)), ref)
    low = loss(z.bfloat16(), y)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(ref.item(), rel=2e-2)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 1, 5, 7), (2, 2, 6, 3)])
def test_shapes_give_scalar(shape):
    y = torch.zeros(shape[0], 1, *shape[2:])
    for name in L.LOSSES:
        out = L.build_loss(name)(torch.randn(shape), y)
        assert out.shape == () and torch.isfinite(out)


# --- deep supervision ---------------------------------------------------------------------


def test_deep_supervision_weighting_is_exact():
    y = torch.zeros(1, 1, 2, 2)
    final, aux1, aux2 = (torch.full((1, 1, 2, 2), c, dtype=torch.float64) for c in (0.0, 1.0, -1.0))
    ds = L.DeepSupervisionLoss(L.BCELoss())
    expected = 0.5 * softplus(0) + 0.25 * softplus(1) + 0.25 * softplus(-1)
    assert ds([final, aux1, aux2], y).item() == pytest.approx(expected, rel=1e-12)
    assert ds([final, aux1], y).item() == pytest.approx(0.5 * softplus(0) + 0.5 * softplus(1))
    assert ds(final, y).item() == pytest.approx(softplus(0))  # eval mode: a plain tensor
    assert ds([aux1], y).item() == pytest.approx(softplus(1))
    weighted = L.DeepSupervisionLoss(L.BCELoss(), final_weight=0.8)([final, aux1], y)
    assert weighted.item() == pytest.approx(0.8 * softplus(0) + 0.2 * softplus(1))


def test_deep_supervision_gradient_reaches_every_head():
    heads = [torch.randn(2, 1, 4, 4, requires_grad=True) for _ in range(3)]
    L.build_loss("bce_dice", deep_supervision=True)(heads, torch.ones(2, 1, 4, 4)).backward()
    assert all(h.grad is not None and h.grad.abs().sum() > 0 for h in heads)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "logits, target, match",
    [
        (torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 5), "target must have shape"),
        (torch.randn(2, 1, 4, 4), torch.zeros(1, 1, 4, 4), "target must have shape"),
        (torch.randn(2, 1, 4, 4), torch.zeros(2, 2, 4, 4), "target must have shape"),
        (torch.randn(2, 3, 4, 4), torch.zeros(2, 1, 4, 4), "1 channel"),
        (torch.randn(2, 4, 4), torch.zeros(2, 1, 4, 4), "logits must be a float tensor"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.long), torch.zeros(2, 1, 4, 4), "float"),
        (torch.randn(1, 1, 2, 2), torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), "255"),
        ([torch.randn(1, 1, 2, 2)], torch.zeros(1, 1, 2, 2), "DeepSupervisionLoss"),
    ],
)
def test_bad_input_is_a_clear_value_error(logits, target, match):
    with pytest.raises(ValueError, match=match):
        L.DiceBCELoss()(logits, target)


@pytest.mark.parametrize(
    "name, cls, weights",
    [
        ("bce", L.BCELoss, {}),
        ("mse", L.MSELoss, {}),
        ("dice", L.DiceLoss, {}),
        ("focal", L.FocalLoss, {}),
        ("dice_bce", L.DiceBCELoss, {"dice_weight": 0.7, "bce_weight": 0.3}),
        ("combined", L.CombinedLoss, {"weights": (0.5, 0.3, 0.2)}),
        ("focal_jaccard", L.FocalJaccardLoss, {"focal_weight": 1.0, "jaccard_weight": 1.0}),
        ("bce_dice", L.BCEDiceLoss, {"bce_weight": 0.5, "dice_weight": 1.0}),
    ],
)
def test_build_loss_names_map_to_the_reports_losses(name, cls, weights):
    loss = L.build_loss(name)
    assert type(loss) is cls
    assert {k: getattr(loss, k) for k in weights} == weights


def test_build_loss_errors_name_the_choices():
    with pytest.raises(ValueError, match="valid names: bce, mse, dice"):
        L.build_loss("dicee")
    with pytest.raises(ValueError, match="unknown argument.*'gama'.*'gamma'"):
        L.build_loss("combined", gama=2)
    with pytest.raises(ValueError, match="DeepSupervisionLoss: got an empty list"):
        L.build_loss("bce", deep_supervision=True)([], torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="dice", smooth=0.0), "smooth must be > 0"),
        (dict(name="focal", alpha=1.5), "alpha"),
        (dict(name="focal", gamma=-1.0), "gamma"),
        (dict(name="dice_bce", bce_weight=-0.1), "bce_weight"),
        (dict(name="bce", pos_weight=0.0), "pos_weight"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.build_loss(**kwargs)
    with pytest.raises(ValueError, match="final_weight"):
        L.DeepSupervisionLoss(L.BCELoss(), final_weight=1.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(L.LOSSES))
def test_cuda_autocast_matches_cpu(name):
    torch.manual_seed(4)
    z, y = torch.randn(2, 1, 64, 64), (torch.rand(2, 1, 64, 64) > 0.8).float()
    with torch.autocast("cuda", dtype=torch.float16):
        gpu = L.build_loss(name)(z.cuda().half(), y.cuda())
    assert gpu.dtype == torch.float32
    assert gpu.item() == pytest.approx(L.build_loss(name)(z, y).item(), rel=1e-2, abs=1e-3)
