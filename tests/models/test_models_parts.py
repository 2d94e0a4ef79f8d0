"""labkit.models parts: FV block, PASPP, residual block, deep supervision and the cascade."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit.models import (
    OUTSIDE_LUNG_LOGIT,
    PASPP,
    CascadeModel,
    FVBlock,
    ResidualBlock,
    build_model,
)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- FV block -----------------------------------------------------------------------


@pytest.mark.parametrize("gate, channel_shape", [("ce", (3, 1, 1, 1)), ("se", (3, 32, 1, 1))])
def test_fv_block_shapes_and_gates(gate, channel_shape):
    torch.manual_seed(0)
    block = FVBlock(32, gate=gate, se_reduction=4)
    x = _rand(3, 32, 16, 12)
    out = block(x)
    assert out.shape == x.shape
    gates = block.gates(x)
    # CE: ONE scalar per sample; SE: one per channel; spatial: one per pixel.
    assert gates["channel"].shape == channel_shape
    assert gates["spatial"].shape == (3, 1, 16, 12)
    for g in gates.values():
        assert ((g >= 0) & (g <= 1)).all()
        assert g.std() > 0  # not a constant: the gates depend on the input
    # forward keeps the last gates for plots (detached)
    assert set(block.last_gates) == {"channel", "spatial"}
    torch.testing.assert_close(block.last_gates["spatial"], gates["spatial"])
    assert not block.last_gates["spatial"].requires_grad


def test_fv_block_is_residual_and_reweights_features():
    torch.manual_seed(0)
    block = FVBlock(8, gate="ce").eval()
    x = _rand(2, 8, 10, 10)
    # With the fuse conv zeroed, only the residual path is left: out == x.
    with torch.no_grad():
        block.fuse[0].weight.zero_()
        torch.testing.assert_close(block(x), x)
    # Oracle: recompute out = x + BN(conv3x3([F * g_c, F * g_s])) by hand.
    torch.manual_seed(1)
    block = FVBlock(8, gate="ce").eval()
    with torch.no_grad():
        f = block.features(x)
        pooled = f.mean(dim=(2, 3))  # global average pool (B, C)
        fc1, fc2 = block.channel_gate[2], block.channel_gate[4]
        g_c = torch.sigmoid(fc2(F.relu(fc1(pooled))))[:, :, None, None]  # (B, 1, 1, 1)
        s1, s2 = block.spatial_gate[0], block.spatial_gate[2]
        g_s = torch.sigmoid(s2(F.relu(s1(f))))
        expected = x + block.fuse(torch.cat([f * g_c, f * g_s], dim=1))
        torch.testing.assert_close(block(x), expected)


def test_fv_block_rejects_unknown_gate():
    with pytest.raises(ValueError, match="gate must be one of"):
        FVBlock(8, gate="cbam")
    with pytest.raises(ValueError, match="gate must be one of"):
        build_model("fvpaspp", gate="CE")


# --- PASPP ---------------------------------------------------------------------------


def test_paspp_dilations_and_shape():
    torch.manual_seed(0)
    block = PASPP(32)
    assert block.dilations == (1, 2, 4, 8)
    atrous = sorted(
        m.dilation[0]
        for m in block.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    )
    assert atrous == [1, 2, 4, 8]
    # four 1x1 reductions to C/4
    reductions = [b[0][0] for b in block.branches]
    assert all(r.kernel_size == (1, 1) and r.out_channels == 8 for r in reductions)
    x = _rand(2, 32, 20, 20)
    assert block(x).shape == x.shape


def test_paspp_sees_exactly_the_atrous_offsets():
    """Each output pixel depends on input pixels at offsets 0, +-1, +-2, +-4, +-8 (per axis)."""
    torch.manual_seed(0)
    block = PASPP(32).eval()
    # Several independent images: a ReLU may switch a path off for one of them, not all.
    x = _rand(8, 32, 33, 33).requires_grad_(True)
    block(x)[:, :, 16, 16].sum().backward()
    influence = x.grad.abs().sum(dim=(0, 1))  # (33, 33)
    row = {c - 16 for c in range(33) if influence[16, c] > 0}
    assert row == {0, 1, -1, 2, -2, 4, -4, 8, -8}
    assert influence[16 + 8, 16 + 8] > 0 and influence[16 + 3, 16] == 0


# --- residual block ------------------------------------------------------------------


def test_residual_block_projection_only_when_channels_change():
    same, change = ResidualBlock(8, 8), ResidualBlock(4, 8)
    assert isinstance(same.shortcut, nn.Identity)
    conv = change.shortcut[0]
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
    x = _rand(2, 4, 8, 8)
    assert change(x).shape == (2, 8, 8, 8)
    # with the body's last BN scaled to zero the block is relu(shortcut(x))
    with torch.no_grad():
        change.body[2].weight.zero_()
        change.body[2].bias.zero_()
    change.eval()
    torch.testing.assert_close(change(x), torch.relu(change.shortcut(x)))


# --- deep supervision ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_deep_supervision_list_in_train_tensor_in_eval(depth):
    torch.manual_seed(0)
    model = build_model("fvpaspp", base_width=4, depth=depth, classes=2)
    x = _rand(2, 1, 32, 32)
    outs = model.train()(x)
    assert isinstance(outs, list) and len(outs) == depth  # final + (depth - 1) heads
    assert all(o.shape == (2, 2, 32, 32) for o in outs)
    model.eval()
    with torch.no_grad():
        final = model(x)
        assert isinstance(final, torch.Tensor) and final.shape == (2, 2, 32, 32)
        # The list's first entry is the final output: with batch norm frozen (eval) and
        # the heads switched on by hand, the two agree exactly.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        model.training = True  # only the top-level flag: BN stays in eval mode
        torch.testing.assert_close(model(x)[0], final)
    off = build_model("fvpaspp", base_width=4, depth=depth, deep_supervision=False).train()
    assert isinstance(off(x), torch.Tensor)


def test_deep_supervision_heads_see_coarser_levels():
    """Head k is a 1x1 conv on the decoder level at H / 2**k, bilinearly upsampled."""
    torch.manual_seed(0)
    model = build_model("fvpaspp", base_width=4, depth=3).train()
    x = _rand(1, 1, 32, 32)
    decoded = []
    hook = model.decoder.register_forward_hook(lambda m, i, o: decoded.extend(o))
    outs = model(x)
    hook.remove()
    # decoded: coarsest (8x8) first; heads go finest first (16x16, then 8x8)
    for k, (head, level) in enumerate(zip(model.aux_heads, reversed(decoded[:-1])), start=1):
        assert level.shape[-1] == 32 // 2**k
        expected = F.interpolate(head(level), size=(32, 32), mode="bilinear", align_corners=False)
        torch.testing.assert_close(outs[k], expected)


# --- cascade -------------------------------------------------------------------------


def _cascade(in_channels: int = 1, classes: int = 1) -> CascadeModel:
    torch.manual_seed(0)
    return build_model(
        "cascade",
        in_channels=in_channels,
        classes=classes,
        lung_kwargs={"base_width": 4, "depth": 2},
        infection_kwargs={"base_width": 4, "depth": 2},
    )


@pytest.mark.parametrize("in_channels", [1, 3])
def test_cascade_stage_channels(in_channels):
    model = _cascade(in_channels)
    assert model.lung.in_channels == in_channels
    assert model.infection.in_channels == in_channels + 1  # image + lung mask
    image = _rand(2, in_channels, 16, 16)
    lung_mask = (_rand(2, 1, 16, 16) > 0).float()
    stacked = model.infection_input(image, lung_mask)
    assert stacked.shape == (2, in_channels + 1, 16, 16)
    torch.testing.assert_close(stacked[:, -1:], lung_mask)
    with pytest.raises(ValueError, match="lung_mask"):
        model.infection_input(image, lung_mask[:, :, :8])


@pytest.mark.parametrize("classes", [1, 2])
def test_cascade_infection_is_zero_outside_the_lung(classes):
    model = _cascade(classes=classes).eval()
    image = _rand(2, 1, 32, 32)
    with torch.no_grad():
        stages = model.forward_stages(image)
        raw = model.infection(model.infection_input(image, stages.lung_mask))
    mask = stages.lung_mask
    assert mask.shape == (2, 1, 32, 32)
    assert 0 < mask.mean() < 1  # the untrained lung model gives both lung and background
    assert stages.infection.shape == (2, classes, 32, 32)
    if classes == 1:
        prob = torch.sigmoid(stages.infection)
    else:
        prob = torch.softmax(stages.infection, dim=1)[:, 1:]
    outside = (mask == 0).expand_as(prob)
    assert prob[outside].eq(0).all()  # exactly zero infection probability
    inside = (mask == 1).expand_as(raw)
    torch.testing.assert_close(stages.infection[inside], raw[inside])  # untouched in the lung
    assert torch.isfinite(stages.infection).all()
    torch.testing.assert_close(model(image), stages.infection)


class LeftHalfLung(nn.Module):
    """A real lung stage with a known answer: the left half of every image is lung."""

    stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full_like(x[:, :1], -10.0)
        logits[..., : x.shape[-1] // 2] = 10.0
        return logits


def test_cascade_masking_convention_and_gradients():
    infection = _cascade().infection
    cascade = CascadeModel(LeftHalfLung(), infection).eval()
    image = _rand(2, 1, 32, 32)
    with torch.no_grad():
        stages = cascade.forward_stages(image)
    expected_mask = torch.zeros(2, 1, 32, 32)
    expected_mask[..., :16] = 1
    torch.testing.assert_close(stages.lung_mask, expected_mask)
    assert (stages.infection[..., 16:] == OUTSIDE_LUNG_LOGIT).all()  # the documented -1e4
    assert (stages.infection[..., :16] != OUTSIDE_LUNG_LOGIT).all()
    # Losses stay finite (-inf would give NaN) and masked pixels carry no gradient.
    cascade.train()
    out = cascade(image)
    out.retain_grad()
    loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in cascade.infection.parameters())
    assert torch.isfinite(out.grad).all()


def test_cascade_passes_deep_supervision_lists_through_masked():
    cascade = build_model(
        "cascade",
        in_channels=1,
        lung_kwargs={"base_width": 4, "depth": 2},
        infection_model="fvpaspp",
        infection_kwargs={"base_width": 4, "depth": 3},
    )
    cascade.lung = LeftHalfLung()
    outs = cascade.train()(_rand(2, 1, 32, 32))
    assert isinstance(outs, list) and len(outs) == 3
    for o in outs:
        assert (o[..., 16:] == OUTSIDE_LUNG_LOGIT).all()


def test_cascade_stages_train_on_their_own_and_freeze_lung():
    model = _cascade()
    image, lung = _rand(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    F.binary_cross_entropy_with_logits(model.lung(image), lung).backward()
    assert all(p.grad is not None for p in model.lung.parameters())
    assert all(p.grad is None for p in model.infection.parameters())

    frozen = build_model(
        "cascade",
        in_channels=1,
        freeze_lung=True,
        lung_kwargs={"base_width": 4, "depth": 2},
        infection_kwargs={"base_width": 4, "depth": 2},
    )
    frozen.train()
    assert frozen.training and frozen.infection.training and not frozen.lung.training
    assert not any(p.requires_grad for p in frozen.lung.parameters())


def test_cascade_argument_errors():
    with pytest.raises(ValueError, match="threshold"):
        build_model("cascade", threshold=1.5)
    with pytest.raises(ValueError, match="in_channels on the cascade"):
        build_model("cascade", infection_kwargs={"in_channels": 4})
    with pytest.raises(ValueError, match="cannot be 'cascade'"):
        build_model("cascade", lung_model="cascade")
