"""The residual-encoder U-Net of lab 03 (report 000).

Report 000 keeps the U-Net decoder and replaces each encoder level's two plain
convolutions by a residual block (two 3x3 conv + BN, plus a shortcut; a 1x1 projection
where the channel count changes). Lab 03 trains it twice, with BCE and with MSE.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._sizes import crop_back, fit_to_stride
from .blocks import ResidualBlock, Upsample
from .unet import UNetDecoder, check_arch_args, encoder_widths, plain_encoder


class ResUNet(nn.Module):
    """U-Net with residual encoder levels (lab 03, report 000); decoder as in :class:`UNet`.

    Every encoder level is a :class:`~labkit.models.blocks.ResidualBlock`; since each
    level changes the channel count, each has a projection shortcut (1x1 conv + BN).

    Args:
        in_channels: image channels (report 000: 1, grey scaled to [0, 1]).
        classes: 1 for a sigmoid head, 2 for a softmax head.
        depth: number of down/up-sampling steps; the stride is ``2**depth``.
        base_width: channels of the first level; each level doubles it.
        upsample: ``"transpose"`` or ``"bilinear"`` decoder upsampling.
        pad: pad inputs to a multiple of the stride and crop the output back, instead of
            raising ``ValueError``.

    Returns:
        Logits of shape ``(B, classes, H, W)``.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, classes, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        depth: int = 3,
        base_width: int = 64,
        upsample: Upsample = "transpose",
        pad: bool = False,
    ) -> None:
        super().__init__()
        check_arch_args(in_channels, classes, depth, base_width)
        widths = encoder_widths(base_width, depth)
        self.in_channels, self.classes, self.pad = in_channels, classes, pad
        self.stride = 2**depth
        self.encoder = plain_encoder(in_channels, widths, ResidualBlock)
        self.decoder = UNetDecoder(widths, upsample)
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        x, size = fit_to_stride(
            x, self.stride, pad=self.pad, name="resunet", in_channels=self.in_channels
        )
        features = self.encoder(x)
        decoded = self.decoder(features)[-1]
        return crop_back(self.head(decoded), size)
