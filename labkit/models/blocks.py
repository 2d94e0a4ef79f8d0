"""Building blocks shared by the hand-written U-Nets of labs 02, 03 and 06.

* :class:`ConvBNReLU`: 3x3 convolution, batch norm, ReLU, the unit everything is made of.
* :class:`DoubleConv`: two of them, one U-Net level (report 001, VGG-like).
* :class:`ResidualBlock`: the same two convolutions plus a shortcut (report 000).
* :class:`UpBlock`: one decoder step: upsample x2, concatenate the skip, DoubleConv.

All blocks keep the spatial size except :class:`UpBlock`, which doubles it. ConvBNReLU,
DoubleConv and UpBlock take ``dims=2`` (images, ``(B, C, H, W)``) or ``dims=3`` (CT volumes,
``(B, C, D, H, W)``, lab 07): the same block with ``Conv3d`` / ``BatchNorm3d`` layers.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Upsample = Literal["transpose", "bilinear"]
UPSAMPLE_MODES = ("transpose", "bilinear")
DIMS = (2, 3)


def check_dims(dims: int) -> int:
    """``dims`` if it is 2 or 3, else a ``ValueError`` naming the argument."""
    if dims not in DIMS or isinstance(dims, bool):
        raise ValueError(f"dims must be 2 (images) or 3 (volumes), got {dims!r}")
    return dims


def conv_layer(dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return (nn.Conv2d, nn.Conv3d)[check_dims(dims) - 2]


def batch_norm_layer(dims: int) -> type[nn.Module]:
    """``nn.BatchNorm2d`` or ``nn.BatchNorm3d``."""
    return (nn.BatchNorm2d, nn.BatchNorm3d)[check_dims(dims) - 2]


class ConvBNReLU(nn.Sequential):
    """Conv (no bias: batch norm has its own shift) -> BatchNorm -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 3 (default) or 1.
        dilation: atrous rate; padding keeps the spatial size.
        dims: 2 (``Conv2d``) or 3 (``Conv3d``, volumes).

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` (with ``dims=3``:
        ``(B, in_channels, D, H, W)`` -> ``(B, out_channels, D, H, W)``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        dims: int = 2,
    ) -> None:
        padding = dilation * (kernel_size // 2)
        super().__init__(
            conv_layer(dims)(
                in_channels,
                out_channels,
                kernel_size,
                padding=padding,
                dilation=dilation,
                bias=False,
            ),
            batch_norm_layer(dims)(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + BN + ReLU: one level of the U-Net (lab 02, report 001).

    Args:
        in_channels: input channels.
        out_channels: output channels (of both convolutions).
        dims: 2 (images) or 3 (volumes).

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` (``dims=3``: with ``D``).
    """

    def __init__(self, in_channels: int, out_channels: int, dims: int = 2) -> None:
        super().__init__(
            ConvBNReLU(in_channels, out_channels, dims=dims),
            ConvBNReLU(out_channels, out_channels, dims=dims),
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
            no checkerboard artefacts; trilinear with ``dims=3``). Both halve the channels
            before concatenation.
        dims: 2 (images) or 3 (volumes: every spatial axis doubles).

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
        dims: int = 2,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        up_channels = max(1, in_channels // 2)
        if upsample == "transpose":
            transpose = (nn.ConvTranspose2d, nn.ConvTranspose3d)[check_dims(dims) - 2]
            self.up: nn.Module = transpose(in_channels, up_channels, 2, stride=2)
        else:
            mode = "bilinear" if check_dims(dims) == 2 else "trilinear"
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode=mode, align_corners=False),
                conv_layer(dims)(in_channels, up_channels, 1),
            )
        self.conv = DoubleConv(up_channels + skip_channels, out_channels, dims=dims)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)  # (B, in/2, 2H, 2W)
        return self.conv(torch.cat([x, skip], dim=1))  # cat: (B, in/2 + skip, 2H, 2W)
