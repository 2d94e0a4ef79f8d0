"""The residual-encoder U-Net of lab 03 (report 000): a `UNet` with ``block="residual"``.

Report 000 keeps the U-Net decoder and builds the encoder from residual blocks (the
syllabus says no more; labkit's block: two 3x3 conv + BN, plus a shortcut, with a 1x1
projection where the channel count changes, in place of each level's two plain
convolutions). Lab 03 trains it twice, with BCE and with MSE.
"""

from __future__ import annotations

from .blocks import Upsample
from .unet import UNet


class ResUNet(UNet):
    """``UNet(..., block="residual")`` under its lab-03 name (lab 03, report 000).

    Every encoder level is a :class:`~labkit.models.blocks.ResidualBlock`; since each
    level changes the channel count, each has a projection shortcut (1x1 conv + BN). The
    decoder and head are :class:`UNet`'s. This class adds no parts: it only fixes ``block``.

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
        super().__init__(in_channels, classes, depth, base_width, upsample, pad, block="residual")
