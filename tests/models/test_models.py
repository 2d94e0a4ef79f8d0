"""labkit.models: every registered model builds, runs forward and backward, and checks its input.

Parametrized over every name in MODELS (small widths so the suite stays fast on 2 CPU cores).
"""

from __future__ import annotations

import pytest
import torch

from labkit.models import (
    MODELS,
    build_from_spec,
    build_model,
    count_parameters,
    set_batch_norm_momentum,
    summary,
)

# Small, fast settings per model; the pretrained encoders cannot shrink (their size is
# the point), so they run with encoder_weights=None at 64x64.
SMALL = {
    "unet": {"in_channels": 1, "base_width": 8},
    "resunet": {"in_channels": 1, "base_width": 8},
    "unet-resnet34": {"in_channels": 3},
    "unet-efficientnet-b0": {"in_channels": 3},
    "unet-efficientnet-b3": {"in_channels": 3},
    "cascade": {
        "in_channels": 1,
        "lung_kwargs": {"base_width": 4},
        "infection_kwargs": {"base_width": 4},
    },
    "fvpaspp": {"in_channels": 1, "base_width": 8},
}
# the 2-D models; lab 07's 3-D CT model has its own tests (test_models_3d.py)
NAMES = [name for name in MODELS if name != "fvpaspp3d"]


def small(name: str, **extra):
    torch.manual_seed(0)
    return build_model(name, **{**SMALL[name], **extra})


def images(name: str, batch: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(
        batch, SMALL[name]["in_channels"], size, size, generator=torch.Generator().manual_seed(1)
    )


def test_every_model_has_test_settings():
    assert set(SMALL) == set(NAMES) == set(MODELS) - {"fvpaspp3d"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_model("unet3")
    for name in MODELS:
        assert name in str(err.value)
    assert "Did you mean 'unet'" in str(err.value)


def test_unknown_argument_lists_accepted_ones():
    with pytest.raises(ValueError, match="base_widht.*accepts: .*base_width"):
        build_model("unet", base_widht=8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 0}, "depth must be an int >= 1"),
        ({"base_width": 2.5}, "base_width must be an int"),
        ({"upsample": "nearest"}, "upsample must be one of"),
        ({"in_channels": 0}, "in_channels must be an int >= 1"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model("unet", **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_shape_and_gradients(name):
    model = small(name)
    model.train()
    x = images(name)
    out = model(x)
    outs = out if isinstance(out, list) else [out]
    for o in outs:
        assert o.shape == (2, 1, 64, 64)
        assert torch.isfinite(o).all()
    sum(o.mean() for o in outs).backward()
    # The cascade's lung stage runs without gradient inside forward (it is trained on its own).
    trainable = model.infection if name == "cascade" else model
    no_grad = [n for n, p in trainable.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters that got no gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in trainable.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_two_class_softmax_head(name):
    model = small(name, classes=2).eval()
    with torch.no_grad():
        out = model(images(name))
    assert out.shape == (2, 2, 64, 64)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_output(name):
    model = small(name).eval()
    x = images(name)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)


def calibrate_batch_norm(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Set batch-norm running statistics from one batch, then switch to eval mode.

    With fresh statistics (mean 0, var 1) activations shrink layer by layer and an
    untrained model's logits are ~1e-3: too small to compare precisions meaningfully.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one batch, its statistics
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_autocast_forward_on_cpu(name):
    x = images(name)
    model = calibrate_batch_norm(small(name), x)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == reference.shape
    assert torch.isfinite(out.float()).all()
    # bf16 keeps ~3 significant digits, so the logits must still agree overall. (Measured:
    # corr > 0.98 for the hand-written nets, ~0.91 for untrained EfficientNets whose deep
    # depthwise stacks amplify rounding.) The cascade's -1e4 outside the lung would
    # dominate, and its lung mask may flip where the untrained lung model sits at the
    # threshold: compare inside both masks.
    inside = (out.float() > -1e3) & (reference > -1e3)
    assert inside.float().mean() > 0.5
    pair = torch.stack([out.float()[inside], reference[inside]])
    corr = torch.corrcoef(pair)[0, 1]
    assert corr > 0.85


@pytest.mark.parametrize("name", NAMES)
def test_size_not_multiple_of_stride_names_nearest_valid_sizes(name):
    model = small(name).eval()
    stride = model.stride
    height = 2 * stride + 4  # between two valid sizes
    smaller, larger = 2 * stride, 3 * stride
    x = torch.rand(1, SMALL[name]["in_channels"], height, 2 * stride)
    with pytest.raises(ValueError) as err:
        model(x)
    message = str(err.value)
    assert f"height {height}" in message
    assert f"{smaller} or {larger}" in message
    assert "pad=True" in message


@pytest.mark.parametrize("name", [n for n in NAMES if n != "cascade"])
def test_pad_true_pads_and_crops_back(name):
    model = small(name, pad=True).eval()
    x = torch.rand(1, SMALL[name]["in_channels"], 70, 45)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 1, 70, 45)
    # Padding only adds pixels at the bottom/right: a valid-size input is left alone.
    x64 = images(name, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x64), small(name).eval()(x64))


def test_wrong_channel_count_and_shape_are_named():
    model = small("unet")
    with pytest.raises(ValueError, match="3 channels.*in_channels=1"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.rand(1, 64, 64))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))


# --- parameter counts -------------------------------------------------------------------


def _double_conv(cin: int, cout: int) -> int:
    return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout  # convs (no bias) + BN


def _residual(cin: int, cout: int) -> int:
    projection = cin * cout + 2 * cout if cin != cout else 0
    return _double_conv(cin, cout) + projection


def reference_unet_parameters(
    in_channels: int, classes: int, depth: int, base: int, block=_double_conv, bilinear=False
) -> int:
    """Count by hand, level by level, the U-Net the syllabus describes."""
    widths = [base * 2**i for i in range(depth + 1)]
    total = sum(block(cin, cout) for cin, cout in zip([in_channels, *widths[:-1]], widths))
    for i in range(depth):
        cin, up = widths[i + 1], widths[i + 1] // 2
        total += cin * up + up if bilinear else 4 * cin * up + up  # 1x1 conv / 2x2 transposed
        total += _double_conv(up + widths[i], widths[i])
    return total + widths[0] * classes + classes


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"base_width": 16, "depth": 4, "classes": 2}, {"upsample": "bilinear", "in_channels": 3}],
)
def test_unet_parameter_count_matches_hand_count(kwargs):
    model = build_model("unet", **kwargs)
    full = {"in_channels": 1, "classes": 1, "depth": 3, "base_width": 64, **kwargs}
    expected = reference_unet_parameters(
        full["in_channels"],
        full["classes"],
        full["depth"],
        full["base_width"],
        bilinear=full.get("upsample") == "bilinear",
    )
    assert count_parameters(model) == expected
    assert model.stride == 2 ** full["depth"]


def test_default_unet_is_report_001_size():
    model = build_model("unet")
    assert model.stride == 8  # three down-sampling steps
    assert 7.0e6 < count_parameters(model) < 8.0e6


def test_resunet_parameter_count_matches_hand_count():
    model = build_model("resunet")
    assert count_parameters(model) == reference_unet_parameters(1, 1, 3, 64, block=_residual)


@pytest.mark.parametrize(
    "name, low, high",
    [
        ("unet-resnet34", 24.35e6, 24.45e6),  # report 002: 24.4M trainable parameters
        ("unet-efficientnet-b0", 5.6e6, 6.1e6),  # smp counts 0.4M unused head params more
        ("unet-efficientnet-b3", 12.3e6, 12.8e6),
    ],
)
def test_pretrained_parameter_counts(name, low, high):
    model = build_model(name, in_channels=3, classes=2)
    assert model.stride == 32
    assert low < count_parameters(model, trainable_only=True) < high


def test_efficientnet_batch_norms_average_slowly_until_set_to_pytorchs_default():
    """smp's EfficientNet keeps TensorFlow's momentum (0.01): the smoke profile of labs 04/05
    sets 0.1 (labkit.runs.CLITraining.bn_momentum); ResNet34 already has 0.1."""
    b0 = build_model("unet-efficientnet-b0", in_channels=3)
    norms = [m for m in b0.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {round(m.momentum, 6) for m in b0.encoder.modules() if m in norms} == {0.01}
    assert set_batch_norm_momentum(b0, 0.1) == len(norms)
    assert {m.momentum for m in norms} == {0.1}
    resnet = build_model("unet-resnet34", in_channels=3)
    assert {m.momentum for m in resnet.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    for bad in (0, 1.5, None, True, "0.1"):
        with pytest.raises(ValueError, match="momentum must be a number in"):
            set_batch_norm_momentum(b0, bad)


def test_fvpaspp_with_everything_off_is_the_baseline_unet():
    baseline = build_model("unet", base_width=16)
    plain = build_model("fvpaspp", base_width=16, fv=False, paspp=False, deep_supervision=False)
    assert count_parameters(plain) == count_parameters(baseline)
    # Same parameter names too, so lab 06's "UNet" row is exactly lab 02's model.
    assert set(plain.state_dict()) == set(baseline.state_dict())
    sizes = [
        count_parameters(build_model("fvpaspp", base_width=16, **kw))
        for kw in (
            {"fv": False, "paspp": False, "deep_supervision": False},
            {"paspp": False, "deep_supervision": False},
            {"deep_supervision": False},
            {},
        )
    ]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4  # each part adds parameters


# --- registry, spec, summary ---------------------------------------------------------


def test_build_model_records_spec_and_build_from_spec_rebuilds_it():
    model = small("fvpaspp", gate="se").eval()
    assert model.labkit_spec == {
        "name": "fvpaspp",
        "kwargs": {"in_channels": 1, "base_width": 8, "gate": "se"},
    }
    rebuilt = build_from_spec(model.labkit_spec).eval()
    rebuilt.load_state_dict(model.state_dict())  # strict: same architecture
    x = images("fvpaspp")
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_build_from_spec_drops_weight_sources(tmp_path):
    spec = {
        "name": "cascade",
        "kwargs": {
            "in_channels": 3,
            "lung_model": "unet-efficientnet-b0",
            "lung_kwargs": {"encoder_weights": "imagenet"},
            "infection_kwargs": {"base_width": 4, "depth": 2},
        },
    }
    # No download is attempted (this machine is offline) and no file is needed.
    model = build_from_spec(spec)
    assert model.lung.encoder_name == "efficientnet-b0"
    assert model.infection.in_channels == 4


def test_summary_counts_parts():
    model = small("unet")
    info = summary(model)
    assert info.name == "unet"
    assert list(info.parts) == ["encoder", "decoder", "head"]
    assert sum(info.parts.values()) == info.total == count_parameters(model)
    assert info.trainable == info.total
    text = str(info)
    assert "encoder" in text and "total" in text and f"{info.total:,}" in text


def test_summary_of_frozen_cascade_reports_trainable():
    model = small("cascade", freeze_lung=True)
    info = summary(model)
    assert set(info.parts) == {"lung", "infection"}
    assert info.trainable == info.parts["infection"] < info.total
