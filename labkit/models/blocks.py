"""Building blocks shared by the hand-written U-Nets of labs 02, 03 and 06.

* :class:`ConvBNReLU`: 3x3 convolution, batch norm, ReLU, the unit everything is made of.
* :class:`DoubleConv`: two of them, one U-Net level (report 001, VGG-like).
* :class:`ResidualBlock`: the same two convolutions plus a shortcut (report 000).
* :class:`UpBlock`: one decoder step: upsample x2, concatenate the skip, DoubleConv.

All blocks keep the spatial size except :class:`UpBlock`, which doubles it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Upsample = Literal["transpose", "bilinear"]
UPSAMPLE_MODES = ("transpose", "bilinear")


class ConvBNReLU(nn.Sequential):
    """Conv (no bias: batch norm has its own shift) -> BatchNorm -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 3 (default) or 1.
        dilation: atrous rate; padding keeps the spatial size.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        padding = dilation * (kernel_size // 2)
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=padding,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + BN + ReLU: one level of the U-Net (lab 02, report 001).

    Args:
        in_channels: input channels.
        out_channels: output channels (of both convolutions).

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ConvBNReLU(in_channels, out_channels),
            ConvBNReLU(out_channels, out_channels),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions plus a shortcut: ``relu(body(x) + shortcut(x))`` (lab 03, report 000).

    The shortcut lets the gradient skip the convolutions, which makes deeper encoders
    easier to train (He et al., 2016). When the channel count changes the identity cannot
    be added, so the shortcut becomes a *projection*: a 1x1 conv + BN to ``out_channels``.

    Args:
        in_channels: input channels.
        out_channels: output channels.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(in_channels, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class UpBlock(nn.Module):
    """One decoder step: upsample x2, concatenate the encoder skip, then a DoubleConv.

    Args:
        in_channels: channels of the coarser decoder input.
        skip_channels: channels of the encoder feature map at the target resolution.
        out_channels: output channels.
        upsample: ``"transpose"`` (learned 2x2 transposed conv, as in the original U-Net)
            or ``"bilinear"`` (fixed interpolation then a 1x1 conv; fewer parameters and
            no checkerboard artefacts). Both halve the channels before concatenation.

    Shape:
        x ``(B, in_channels, H, W)``, skip ``(B, skip_channels, 2H, 2W)``
        -> ``(B, out_channels, 2H, 2W)``.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        upsample: Upsample = "transpose",
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        up_channels = max(1, in_channels // 2)
        if upsample == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, up_channels, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, up_channels, 1),
            )
        self.conv = DoubleConv(up_channels + skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)  # (B, in/2, 2H, 2W)
        return self.conv(torch.cat([x, skip], dim=1))  # cat: (B, in/2 + skip, 2H, 2W)
