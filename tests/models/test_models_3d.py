"""Lab 07's 3-D network, wired from lab 06's parts built with dims=3."""

from __future__ import annotations

import pytest
import torch

from labkit.ct.train import volume_loss
from labkit.models import (
    PASPP,
    ConvBNReLU,
    FVBlock,
    FVPASPPUNet,
    build_from_spec,
    build_model,
    summary,
)


def test_the_3d_model_returns_deep_supervision_in_training_and_one_tensor_in_eval():
    model = build_model("fvpaspp3d", base_width=4, depth=3)
    x = torch.randn(2, 1, 16, 8, 8)
    outs = model.train()(x)
    assert isinstance(outs, list) and len(outs) == 3
    assert all(o.shape == (2, 1, 16, 8, 8) for o in outs)
    assert model.eval()(x).shape == (2, 1, 16, 8, 8)
    plain = build_model("fvpaspp3d", base_width=4, deep_supervision=False).train()
    assert isinstance(plain(x), torch.Tensor)


def test_bad_volume_inputs_are_named():
    model = build_model("fvpaspp3d", base_width=2, depth=2)
    with pytest.raises(ValueError, match="multiple of the stride 4"):
        model(torch.randn(1, 1, 8, 8, 6))
    with pytest.raises(ValueError, match=r"\(B, 1, X, Y, Z\) volume batch"):
        model(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="float tensor"):
        model(torch.zeros(1, 1, 8, 8, 8, dtype=torch.uint8))


def test_every_parameter_gets_a_finite_gradient_and_the_spec_rebuilds_it():
    model = build_model("fvpaspp3d", base_width=4, depth=2, gate="se", se_reduction=2)
    outs = model.train()(torch.randn(2, 1, 8, 8, 4))
    sum(o.mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters that got no gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    again = build_from_spec(model.labkit_spec)
    assert again.state_dict().keys() == model.state_dict().keys()
    assert summary(again).total == summary(model).total


def test_the_fv_block_gates_in_3d_have_one_value_per_volume_channel_or_voxel():
    x = torch.randn(2, 8, 4, 6, 5)
    ce = FVBlock(8, "ce", dims=3)
    gates = ce.gates(x)
    assert gates["channel"].shape == (2, 1, 1, 1, 1) and gates["spatial"].shape == (2, 1, 4, 6, 5)
    assert FVBlock(8, "se", se_reduction=2, dims=3).gates(x)["channel"].shape == (2, 8, 1, 1, 1)
    assert ce(x).shape == x.shape and PASPP(8, dims=3)(x).shape == x.shape


def test_3d_parts_are_the_2d_parts_with_one_more_kernel_axis():
    for make in (lambda d: FVBlock(8, "ce", dims=d), lambda d: PASPP(8, dims=d)):
        flat, deep = make(2).state_dict(), make(3).state_dict()
        assert flat.keys() == deep.keys()
        for key, weight in flat.items():
            if weight.ndim == 4:  # conv kernels (out, in, k, k) -> (out, in, k, k, k)
                assert deep[key].shape == (*weight.shape, weight.shape[-1])
    # the 2-D network is unchanged by the dims switch: same parameters as before it existed
    two = FVPASPPUNet(base_width=4)
    assert all(p.ndim in (1, 2, 4) for p in two.parameters())
    with pytest.raises(ValueError, match="dims must be 2"):
        ConvBNReLU(1, 2, dims=4)


def test_the_3d_model_overfits_one_batch_of_volumes():
    # two 16x16x8 volumes: dark lung background with a bright lesion; the model must drive
    # report 004's loss well below where it starts (a wiring bug would stall it)
    g = torch.Generator().manual_seed(0)
    y = torch.zeros(2, 1, 16, 16, 8)
    y[0, 0, 3:8, 4:9, 2:6] = 1
    y[1, 0, 9:14, 6:12, 1:4] = 1
    x = (0.3 + 0.4 * y + 0.05 * torch.randn(2, 1, 16, 16, 8, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    model = build_model("fvpaspp3d", base_width=4, depth=2).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = volume_loss()
    losses = []
    for _ in range(60):  # measured: 1.29 -> 0.23 (one CPU thread)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
