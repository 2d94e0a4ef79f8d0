"""The base of labkit's segmentation models, as smp's ``SegmentationModel`` is of smp's.

:class:`SegmentationModel` holds what every model shares: its name (for error messages),
``in_channels``, ``classes`` and ``stride``, the argument checks of the hand-written U-Nets
(``depth`` and ``base_width``), and a 2-D ``forward`` that checks the input, pads it to a
multiple of the stride when built with ``pad=True`` (else names the nearest valid sizes),
runs the subclass's :meth:`SegmentationModel.segment` and crops the output back.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._sizes import crop_back, fit_to_stride


def check_arch_args(in_channels: int, classes: int, depth: int, base_width: int) -> None:
    """Validate the arguments every hand-written U-Net shares (clear ``ValueError`` s)."""
    for arg, value, low in (
        ("in_channels", in_channels, 1),
        ("classes", classes, 1),
        ("depth", depth, 1),
        ("base_width", base_width, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
    if depth > 7:
        raise ValueError(f"depth must be at most 7 (stride 128), got {depth}")


class SegmentationModel(nn.Module):
    """A segmentation network: ``(B, in_channels, H, W)`` -> logits ``(B, classes, H, W)``.

    Subclasses build their parts after ``super().__init__(...)`` and write ``segment(x)``
    for an input whose height and width are multiples of ``stride``.

    Args:
        name: the model's name in error messages (``"unet"``, ``"fvpaspp"``, ...).
        in_channels, classes: input channels and output logit channels.
        pad: pad inputs to a multiple of the stride and crop the output back, instead of
            raising ``ValueError``.
        depth, base_width: a hand-written U-Net's down-sampling steps (stride ``2**depth``)
            and first-level width, checked here; ``None`` for another network, which sets
            ``stride`` itself (a pretrained encoder's ``output_stride``).

    Raises:
        ValueError: an argument out of range.
    """

    def __init__(
        self,
        name: str,
        in_channels: int,
        classes: int,
        pad: bool = False,
        depth: int | None = None,
        base_width: int | None = None,
    ) -> None:
        super().__init__()
        if depth is not None or base_width is not None:
            check_arch_args(in_channels, classes, depth, base_width)  # type: ignore[arg-type]
        self.arch_name, self.in_channels, self.classes, self.pad = name, in_channels, classes, pad
        self.stride = 2**depth if depth is not None else 1

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        x, size = fit_to_stride(
            x, self.stride, pad=self.pad, name=self.arch_name, in_channels=self.in_channels
        )
        return crop_back(self.segment(x), size)

    def segment(self, x: Tensor) -> Tensor | list[Tensor]:
        """The network on a checked input of a valid size (the subclass's own forward)."""
        raise NotImplementedError
