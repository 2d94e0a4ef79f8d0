"""ResUNet is UNet(block="residual"): the same parameters and outputs as the class it
replaced (copied below from labkit 0.1's models/resunet.py, built from the same parts)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.models import ResUNet, UNet, build_model, count_parameters
from labkit.models._sizes import crop_back, fit_to_stride
from labkit.models.blocks import ResidualBlock
from labkit.models.unet import UNetDecoder, encoder_widths, plain_encoder


class OldResUNet(nn.Module):
    """The hand-wired residual U-Net as it was before the block= argument."""

    def __init__(self, in_channels=1, classes=1, depth=3, base_width=64, upsample="transpose"):
        super().__init__()
        widths = encoder_widths(base_width, depth)
        self.in_channels, self.stride = in_channels, 2**depth
        self.encoder = plain_encoder(in_channels, widths, ResidualBlock)
        self.decoder = UNetDecoder(widths, upsample)
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)

    def forward(self, x):
        x, size = fit_to_stride(x, self.stride, pad=False, name="resunet", in_channels=1)
        return crop_back(self.head(self.decoder(self.encoder(x))[-1]), size)


@pytest.mark.parametrize("kwargs", [{}, {"classes": 2, "depth": 2, "upsample": "bilinear"}])
def test_same_parameters_and_outputs_as_the_old_class_for_the_same_seed(kwargs):
    kwargs = {"in_channels": 1, "base_width": 4, **kwargs}
    torch.manual_seed(3)
    old = OldResUNet(**kwargs).eval()
    torch.manual_seed(3)
    new = build_model("resunet", **kwargs).eval()
    assert isinstance(new, ResUNet) and isinstance(new, UNet)
    old_shapes = {k: tuple(v.shape) for k, v in old.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in new.state_dict().items()} == old_shapes
    for k, v in old.state_dict().items():
        assert torch.equal(new.state_dict()[k], v), k
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)


def test_unet_block_argument_picks_the_encoder_level():
    plain = UNet(base_width=4)
    residual = UNet(base_width=4, block="residual")
    assert isinstance(residual.encoder.levels[0], ResidualBlock)
    assert not isinstance(plain.encoder.levels[0], ResidualBlock)
    # the residual levels add a 1x1 projection (conv + BN) per level: more parameters
    assert count_parameters(residual) > count_parameters(plain)
    assert count_parameters(residual) == count_parameters(ResUNet(base_width=4))
    with pytest.raises(ValueError, match="block must be one of"):
        UNet(block="dense")
    with pytest.raises(ValueError, match="resunet"):  # errors still name the lab-03 model
        ResUNet(base_width=4)(torch.zeros(1, 1, 30, 30))
