"""The baseline U-Net of lab 02 (report 001), and the encoder/decoder parts labs 03 and 06 reuse.

A U-Net is an encoder that halves the image ``depth`` times while doubling the channels,
and a decoder that doubles it back, concatenating at each step the encoder feature map
of the same size (the *skip connection*: fine detail the bottleneck has lost). Report 001
uses only 3 down/up-sampling steps on 256x256 images, so the bottleneck is 32x32.

Widths with ``base_width=64, depth=3``: 64 -> 128 -> 256 -> 512 (bottleneck) -> 256 ->
128 -> 64 -> 1x1 conv head.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .base import SegmentationModel
from .blocks import DoubleConv, ResidualBlock, UpBlock, Upsample

# The encoder level a U-Net is built from, by name (names keep ``model.labkit_spec`` plain
# data, so a checkpoint can rebuild the model): report 001's two plain convolutions, or
# report 000's residual block.
ENCODER_BLOCKS: dict[str, Callable[[int, int], nn.Module]] = {
    "double_conv": DoubleConv,
    "residual": ResidualBlock,
}


def encoder_widths(base_width: int, depth: int) -> list[int]:
    """Channels per encoder level: ``[base, 2 base, ..., 2**depth base]`` (last = bottleneck)."""
    return [base_width * 2**level for level in range(depth + 1)]


class UNetEncoder(nn.Module):
    """Runs ``levels[0]`` at full size, then max-pool + ``levels[i]`` for each deeper level.

    Args:
        levels: one module per level (e.g. :class:`DoubleConv`); ``len(levels) = depth + 1``.

    Shape:
        ``(B, C, H, W)`` -> list of ``depth + 1`` feature maps, level ``i`` of size
        ``(H / 2**i, W / 2**i)``; the last one is the bottleneck.
    """

    def __init__(self, levels: list[nn.Module]) -> None:
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = [self.levels[0](x)]
        for level in self.levels[1:]:
            features.append(level(self.pool(features[-1])))
        return features


class UNetDecoder(nn.Module):
    """``depth`` :class:`UpBlock` s from the bottleneck back to full resolution.

    Args:
        widths: the encoder widths (:func:`encoder_widths`).
        upsample: ``"transpose"`` or ``"bilinear"``.

    Shape:
        encoder features -> list of ``depth`` decoder maps, coarsest first; the last one is
        ``(B, widths[0], H, W)``. Deep supervision (lab 06) puts a head on every one.
    """

    def __init__(self, widths: list[int], upsample: Upsample = "transpose") -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], upsample=upsample)
            for i in reversed(range(len(widths) - 1))
        )

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        x = features[-1]
        outputs = []
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            x = block(x, skip)
            outputs.append(x)
        return outputs


def plain_encoder(
    in_channels: int, widths: list[int], block: Callable[[int, int], nn.Module] = DoubleConv
) -> UNetEncoder:
    """A :class:`UNetEncoder` whose levels are ``block(in, out)`` (DoubleConv or ResidualBlock)."""
    ins = [in_channels, *widths[:-1]]
    return UNetEncoder([block(cin, cout) for cin, cout in zip(ins, widths)])


class UNet(SegmentationModel):
    """U-Net (lab 02, report 001; with ``block="residual"`` lab 03, report 000): an encoder
    of ``depth + 1`` levels joined by max-pools, a transposed-conv (or bilinear) decoder with
    concatenated skips, and a 1x1 conv head. The class only wires these parts.

    Args:
        in_channels: image channels (1 for grey X-rays, 3 for RGB-replicated).
        classes: 1 for a sigmoid head, 2 for a softmax head (channel 1 = infection).
        depth: number of down/up-sampling steps (report 001: 3). The stride is ``2**depth``.
        base_width: channels of the first level; each level doubles it.
        upsample: ``"transpose"`` (original U-Net) or ``"bilinear"``.
        pad: pad inputs whose size is not a multiple of the stride and crop the output
            back, instead of raising ``ValueError``.
        block: the encoder level, a key of ``ENCODER_BLOCKS``: ``"double_conv"`` (two 3x3
            conv + BN + ReLU, report 001) or ``"residual"`` (the same plus a shortcut,
            report 000). The decoder is the same for both.

    Returns:
        Logits (no sigmoid/softmax) of shape ``(B, classes, H, W)``.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, classes, H, W)``; H and W multiples of
        ``model.stride`` unless ``pad=True``.

    Raises:
        ValueError: an argument out of range or an unknown ``block``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        depth: int = 3,
        base_width: int = 64,
        upsample: Upsample = "transpose",
        pad: bool = False,
        block: str = "double_conv",
    ) -> None:
        name = "unet" if block == "double_conv" else "resunet"  # for error messages
        super().__init__(name, in_channels, classes, pad, depth, base_width)
        if block not in ENCODER_BLOCKS:
            raise ValueError(f"block must be one of {tuple(ENCODER_BLOCKS)}, got {block!r}")
        widths = encoder_widths(base_width, depth)
        self.encoder = plain_encoder(in_channels, widths, ENCODER_BLOCKS[block])
        self.decoder = UNetDecoder(widths, upsample)
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)

    def segment(self, x: Tensor) -> Tensor:
        features = self.encoder(x)  # depth + 1 maps, bottleneck last
        decoded = self.decoder(features)[-1]  # (B, base_width, H, W)
        return self.head(decoded)
