"""Lab 06 (report 004; Yan et al. 2021): FV blocks, PASPP and deep supervision, in 2-D.

Report 004 adds three parts to a U-Net and measures each in an ablation table:

* **FV (feature variation) block** (labkit puts one in every encoder level: its choice): re-weights features with a
  channel gate (the paper's single *contrast-enhancement* gate, or squeeze-and-excitation)
  and a spatial gate, then adds the input back (:class:`FVBlock`).
* **PASPP** at the bottleneck: four atrous convolutions (dilation 1, 2, 4, 8) see context
  at four scales and are merged progressively in pairs (:class:`PASPP`).
* **Deep supervision**: a 1x1 conv head on every decoder level, upsampled to full size,
  so the coarse levels get a loss signal of their own.

Each part has an on/off switch in :class:`FVPASPPUNet`, so lab 06 can rebuild the rows
baseline, +FV(SE), +FV(CE), +FV+PASPP, +FV+PASPP+DS.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ._sizes import upsample_to
from .base import SegmentationModel
from .blocks import ConvBNReLU, DoubleConv, Upsample, batch_norm_layer, check_dims, conv_layer
from .unet import UNetDecoder, UNetEncoder, encoder_widths

Gate = Literal["ce", "se"]
GATES = ("ce", "se")


class FVBlock(nn.Module):
    """Feature variation block (report 004). Output shape = input shape.

    ``F = conv1x1(x)``; a channel gate ``g_c`` and a spatial gate ``g_s`` (both in [0, 1])
    each re-weight ``F``; the two results are concatenated, fused by a 3x3 conv (+ BN) back
    to ``C`` channels and added to ``x``: ``out = x + fuse([F * g_c, F * g_s])``.

    * ``gate="ce"`` (contrast enhancement, the paper's): global average pool -> FC C->C/2
      -> ReLU -> FC C/2->1 -> sigmoid: ONE scalar per sample, ``g_c`` of shape (B, 1, 1, 1).
    * ``gate="se"`` (squeeze-and-excitation): FC C->C/r -> ReLU -> FC C/r->C -> sigmoid:
      one gate per channel, shape (B, C, 1, 1).
    * spatial (position-sensitive) branch: 3x3 conv C->C/2 -> ReLU -> 3x3 conv C/2->1 ->
      sigmoid: one gate per pixel, shape (B, 1, H, W).

    The gates of the last forward pass are kept (detached) in ``block.last_gates`` for
    plotting; :meth:`gates` computes them for a given input.

    Args:
        channels: input = output channels ``C``.
        gate: ``"ce"`` or ``"se"``.
        se_reduction: ``r`` for the SE gate.
        dims: 2 (images) or 3 (CT volumes, lab 07: ``Conv3d``, gates over ``D, H, W``).

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H, W)`` (``dims=3``: ``(B, C, D, H, W)``, gates
        ``(B, 1 or C, 1, 1, 1)`` and ``(B, 1, D, H, W)``).
    """

    def __init__(
        self, channels: int, gate: Gate = "ce", se_reduction: int = 16, dims: int = 2
    ) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        if not isinstance(se_reduction, int) or se_reduction < 1:
            raise ValueError(f"se_reduction must be an int >= 1, got {se_reduction!r}")
        self.gate, self.dims = gate, check_dims(dims)
        conv = conv_layer(dims)
        half = max(1, channels // 2)
        hidden = half if gate == "ce" else max(1, channels // se_reduction)
        self.features = conv(channels, channels, kernel_size=1)
        self.channel_gate = nn.Sequential(
            (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[dims - 2](1),
            nn.Flatten(),  # (B, C)
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1 if gate == "ce" else channels),
            nn.Sigmoid(),
        )
        self.spatial_gate = nn.Sequential(
            conv(channels, half, 3, padding=1),
            nn.ReLU(inplace=True),
            conv(half, 1, 3, padding=1),
            nn.Sigmoid(),
        )
        self.fuse = nn.Sequential(
            conv(2 * channels, channels, 3, padding=1, bias=False),
            batch_norm_layer(dims)(channels),
        )
        self.last_gates: dict[str, Tensor] = {}

    def _features_and_gates(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        f = self.features(x)  # (B, C, H, W)
        # (B, 1 or C) -> (B, 1 or C, 1, 1), or (B, 1 or C, 1, 1, 1) in 3-D: broadcasts over F
        g_channel = self.channel_gate(f).reshape(*f.shape[:1], -1, *[1] * self.dims)
        g_spatial = self.spatial_gate(f)  # (B, 1, H, W)
        return f, {"channel": g_channel, "spatial": g_spatial}

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        """The gates for input ``x``: ``{"channel": (B,1,1,1) or (B,C,1,1), "spatial": (B,1,H,W)}``."""
        return self._features_and_gates(x)[1]

    def forward(self, x: Tensor) -> Tensor:
        f, g = self._features_and_gates(x)
        self.last_gates = {name: gate.detach() for name, gate in g.items()}
        both = torch.cat([f * g["channel"], f * g["spatial"]], dim=1)  # (B, 2C, H, W)
        return x + self.fuse(both)


class PASPP(nn.Module):
    """Progressive atrous spatial pyramid pooling (report 004), used at the bottleneck.

    Four branches, each a 1x1 conv C->C/4 then a 3x3 atrous conv with dilation 1, 2, 4, 8
    (receptive fields 3, 5, 9, 17 pixels). Branches are merged progressively: (1, 2) and
    (4, 8) are concatenated and fused by a 1x1 conv each, then the two halves are
    concatenated and fused by a final 1x1 conv back to C. All convs have BN + ReLU.

    Args:
        channels: input = output channels ``C``.
        dilations: the four atrous rates (report 004: 1, 2, 4, 8); kept in ``.dilations``.
        dims: 2 (images) or 3 (CT volumes, lab 07: 3x3x3 atrous convolutions).

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H, W)`` (``dims=3``: ``(B, C, D, H, W)``).
    """

    def __init__(
        self, channels: int, dilations: tuple[int, int, int, int] = (1, 2, 4, 8), dims: int = 2
    ) -> None:
        super().__init__()
        if len(dilations) != 4 or any(int(d) < 1 for d in dilations):
            raise ValueError(f"dilations must be four ints >= 1, got {dilations!r}")
        self.dilations = tuple(int(d) for d in dilations)
        quarter = max(1, channels // 4)
        self.branches = nn.ModuleList(
            nn.Sequential(
                ConvBNReLU(channels, quarter, kernel_size=1, dims=dims),
                ConvBNReLU(quarter, quarter, kernel_size=3, dilation=d, dims=dims),
            )
            for d in self.dilations
        )
        pair = 2 * quarter
        self.merge_small = ConvBNReLU(pair, pair, kernel_size=1, dims=dims)  # rates 1 + 2
        self.merge_large = ConvBNReLU(pair, pair, kernel_size=1, dims=dims)  # rates 4 + 8
        self.fuse = ConvBNReLU(4 * quarter, channels, kernel_size=1, dims=dims)

    def forward(self, x: Tensor) -> Tensor:
        b1, b2, b4, b8 = (branch(x) for branch in self.branches)  # each (B, C/4, H, W)
        small = self.merge_small(torch.cat([b1, b2], dim=1))  # (B, C/2, H, W)
        large = self.merge_large(torch.cat([b4, b8], dim=1))  # (B, C/2, H, W)
        return self.fuse(torch.cat([small, large], dim=1))  # (B, C, H, W)


class FVPASPPUNet(SegmentationModel):
    """U-Net with FV blocks, PASPP and deep supervision (lab 06, report 004 in 2-D).

    Encoder level = DoubleConv (+ FVBlock if ``fv``); bottleneck (+ PASPP if ``paspp``);
    decoder and head as in :class:`~labkit.models.unet.UNet`. With every switch off the
    network is exactly the baseline U-Net (same parameters).

    Deep supervision (``deep_supervision=True``): each coarser decoder level gets a 1x1
    conv head whose logits are bilinearly upsampled to full size. Return form:

    * ``model.train()``: ``list[Tensor]`` of full-resolution logits, each
      ``(B, classes, H, W)``: the final output first, then the heads of the decoder levels
      at H/2, H/4, ... (finest to coarsest). ``len = depth``. The loss wrapper weights
      0.5 x final + 0.5 spread evenly over the others.
    * ``model.eval()``: the final ``Tensor`` only.

    Args:
        in_channels: image channels.
        classes: 1 (sigmoid) or 2 (softmax, channel 1 = infection).
        depth: down/up-sampling steps; the stride is ``2**depth``.
        base_width: channels of the first level; each level doubles it.
        fv: add an FV block to every encoder level.
        gate: FV channel gate, ``"ce"`` (paper) or ``"se"`` (squeeze-and-excitation).
        se_reduction: ``r`` of the SE gate.
        paspp: add PASPP at the bottleneck.
        deep_supervision: add the intermediate heads (see above).
        upsample: ``"transpose"`` or ``"bilinear"``.
        pad: pad to a multiple of the stride and crop back instead of raising.

    Returns:
        Logits ``(B, classes, H, W)``, or the list above in training with deep supervision.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, classes, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        depth: int = 3,
        base_width: int = 64,
        fv: bool = True,
        gate: Gate = "ce",
        se_reduction: int = 16,
        paspp: bool = True,
        deep_supervision: bool = True,
        upsample: Upsample = "transpose",
        pad: bool = False,
    ) -> None:
        super().__init__("fvpaspp", in_channels, classes, pad, depth, base_width)
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        widths = encoder_widths(base_width, depth)
        self.deep_supervision = deep_supervision
        levels: list[nn.Module] = []
        for cin, cout in zip([in_channels, *widths[:-1]], widths):
            conv = DoubleConv(cin, cout)
            levels.append(nn.Sequential(conv, FVBlock(cout, gate, se_reduction)) if fv else conv)
        self.encoder = UNetEncoder(levels)
        self.bottleneck = PASPP(widths[-1]) if paspp else nn.Identity()
        self.decoder = UNetDecoder(widths, upsample)
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)
        # One head per coarser decoder level (widths[depth-1] ... widths[1]), finest first.
        n_aux = depth - 1 if deep_supervision else 0
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(widths[i], classes, kernel_size=1) for i in range(1, 1 + n_aux)
        )

    def segment(self, x: Tensor) -> Tensor | list[Tensor]:
        features = self.encoder(x)
        features[-1] = self.bottleneck(features[-1])
        decoded = self.decoder(features)  # coarsest first; decoded[-1] is full size
        final = self.head(decoded[-1])  # (B, classes, H, W)
        if not (self.training and self.deep_supervision):
            return final
        # 1x1 conv then upsample == upsample then 1x1 conv (both linear), but cheaper.
        coarse = reversed(decoded[:-1])  # finest (H/2) first
        aux = [upsample_to(head(d), final.shape[-2:]) for head, d in zip(self.aux_heads, coarse)]
        return [final, *aux]
