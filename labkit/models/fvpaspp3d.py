"""Lab 07 (report 004 on CT): the 3-D U-Net with FV blocks, PASPP and deep supervision.

The same parts as lab 06's :class:`~labkit.models.fvpaspp.FVPASPPUNet`, built with
``dims=3``: :class:`~labkit.models.blocks.DoubleConv`, :class:`~labkit.models.fvpaspp.FVBlock`
(Conv3d, CE or SE channel gate), :class:`~labkit.models.fvpaspp.PASPP` (3x3x3 atrous
convolutions) and :class:`~labkit.models.blocks.UpBlock` (transposed Conv3d). Only the
wiring is here. Volumes are ``(B, C, X, Y, Z)`` in the order the NIfTI file stores them;
report 004's patches are 128 x 128 x 8 (8 slices), so with ``depth=3`` the bottleneck is
16 x 16 x 1: PASPP's 3x3x3 kernels read zero padding above and below its one slice, so
they gather context within that slice only; on a 4 x 4 bottleneck (lab 07's smoke patch,
32 x 32 x 8) the dilation-4 and -8 branches have only their centre tap inside the map and
act as 1x1x1 convolutions. Lab 07 says so.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .base import SegmentationModel
from .blocks import DoubleConv, UpBlock, Upsample
from .fvpaspp import GATES, PASPP, FVBlock, Gate
from .unet import encoder_widths


class FVPASPPUNet3d(SegmentationModel):
    """3-D U-Net with FV blocks, PASPP and deep supervision (lab 07; report 004's blocks on
    CT, with labkit's depth and pooling).

    Encoder level = 3-D DoubleConv (+ 3-D FVBlock if ``fv``), max-pool 2x2x2 between levels;
    bottleneck (+ 3-D PASPP if ``paspp``); decoder of 3-D UpBlocks; 1x1x1 conv head.

    Deep supervision: each coarser decoder level gets a 1x1x1 conv head whose logits are
    trilinearly upsampled to full size. ``model.train()`` returns ``[final, aux_1, ...]``
    (finest first, ``len = depth``); ``model.eval()`` returns the final tensor only.

    Args:
        in_channels: volume channels (1 for CT).
        classes: 1 (sigmoid).
        depth: down/up-sampling steps; every side must be a multiple of ``2**depth``.
        base_width: channels of the first level; each level doubles it.
        fv: add an FV block to every encoder level.
        gate: FV channel gate, ``"ce"`` (paper) or ``"se"``.
        se_reduction: ``r`` of the SE gate.
        paspp: add PASPP at the bottleneck.
        deep_supervision: add the intermediate heads.
        upsample: ``"transpose"`` or ``"bilinear"`` (trilinear in 3-D).

    Returns:
        Logits ``(B, classes, X, Y, Z)``, or the list above in training with deep supervision.

    Shape:
        ``(B, in_channels, X, Y, Z)`` -> ``(B, classes, X, Y, Z)``.

    Raises:
        ValueError: an input that is not 5-D, has the wrong channels, or a side that is
            not a multiple of ``model.stride``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        depth: int = 3,
        base_width: int = 32,
        fv: bool = True,
        gate: Gate = "ce",
        se_reduction: int = 16,
        paspp: bool = True,
        deep_supervision: bool = True,
        upsample: Upsample = "transpose",
    ) -> None:
        super().__init__("fvpaspp3d", in_channels, classes, False, depth, base_width)
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        widths = encoder_widths(base_width, depth)
        self.deep_supervision = deep_supervision
        levels: list[nn.Module] = []
        for cin, cout in zip([in_channels, *widths[:-1]], widths):
            conv = DoubleConv(cin, cout, dims=3)
            fv_block = FVBlock(cout, gate, se_reduction, dims=3)
            levels.append(nn.Sequential(conv, fv_block) if fv else conv)
        self.levels = nn.ModuleList(levels)
        self.pool = nn.MaxPool3d(2)
        self.bottleneck = PASPP(widths[-1], dims=3) if paspp else nn.Identity()
        self.up_blocks = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], upsample=upsample, dims=3)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv3d(widths[0], classes, kernel_size=1)
        n_aux = depth - 1 if deep_supervision else 0
        self.aux_heads = nn.ModuleList(
            nn.Conv3d(widths[i], classes, kernel_size=1) for i in range(1, 1 + n_aux)
        )

    def _check(self, x: Tensor) -> None:
        if not (isinstance(x, Tensor) and x.ndim == 5 and x.shape[1] == self.in_channels):
            raise ValueError(
                f"fvpaspp3d: x must be a (B, {self.in_channels}, X, Y, Z) volume batch, "
                f"got shape {tuple(getattr(x, 'shape', ()))}"
            )
        if not x.is_floating_point():
            raise ValueError(f"fvpaspp3d: x must be a float tensor, got {x.dtype}")
        bad = [n for n in x.shape[2:] if n % self.stride]
        if bad:
            raise ValueError(
                f"fvpaspp3d: every side of x must be a multiple of the stride {self.stride}, "
                f"got {tuple(x.shape[2:])} (sample patches of such sides; pad whole volumes)"
            )

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        self._check(x)
        features = [self.levels[0](x)]  # level i: (B, widths[i], X/2**i, Y/2**i, Z/2**i)
        for level in self.levels[1:]:
            features.append(level(self.pool(features[-1])))
        d = self.bottleneck(features[-1])
        decoded = []  # coarsest first; decoded[-1] is full size
        for block, skip in zip(self.up_blocks, reversed(features[:-1])):
            d = block(d, skip)
            decoded.append(d)
        final = self.head(decoded[-1])  # (B, classes, X, Y, Z)
        if not (self.training and self.deep_supervision):
            return final
        size = final.shape[-3:]
        coarse = reversed(decoded[:-1])  # finest first
        aux = [
            F.interpolate(head(d), size=size, mode="trilinear", align_corners=False)
            for head, d in zip(self.aux_heads, coarse)
        ]
        return [final, *aux]
