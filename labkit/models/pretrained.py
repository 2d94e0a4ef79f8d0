"""U-Nets with ImageNet-pretrained encoders, built with segmentation_models_pytorch (lab 04).

Report 002 uses an smp-style U-Net with a ResNet34 encoder (3-channel 256x256 input, 2-class
softmax head, 24.4M parameters); report 003 uses EfficientNet-B3 (lungs) and
EfficientNet-B0 (infection). The encoder is a classification network with its classifier
removed: five stages, each halving the image (stride 32), whose features feed smp's U-Net
decoder through skip connections.

smp is imported only when one of these models is built (it is slow to import).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from torch import Tensor, nn

from .base import SegmentationModel
from .weights import check_download_possible, hub_settings, load_encoder_weights, offline_help

# labkit name -> smp encoder name
ENCODERS = {
    "unet-resnet34": "resnet34",
    "unet-efficientnet-b0": "efficientnet-b0",
    "unet-efficientnet-b3": "efficientnet-b3",
}

_UNUSED_ENCODER_PARTS = ("_conv_head", "_bn1")
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class PretrainedUNet(SegmentationModel):
    """smp's ``Unet``: a pretrained classification encoder + U-Net decoder (lab 04).

    Keeps smp's parts and parameter names (``encoder``, ``decoder``, ``segmentation_head``)
    and adds labkit's input checks, optional padding and dropout before the head.

    Args:
        encoder_name: an smp encoder name (``"resnet34"``, ``"efficientnet-b0"``, ...).
        in_channels: 3 for grey replicated to RGB (ImageNet style), 1 for grey, 4 for
            RGB + lung mask (report 003's infection stage). With pretrained weights smp
            adapts the first convolution (sum over RGB for 1 channel, cyclic copy for 4).
        classes: 1 (sigmoid head) or 2 (report 002's softmax head, channel 1 = infection).
        encoder_weights: None (random init) or ``"imagenet"`` (smp downloads them; fails
            within seconds with instructions when offline).
        weights_path: a local ``.safetensors`` / ``.pt`` / ``.pth`` encoder state dict,
            instead of downloading (see :func:`~labkit.models.weights.load_encoder_weights`).
        dropout: channel dropout before the head (0 = none).
        pad: pad inputs to a multiple of 32 and crop back instead of raising ``ValueError``.
        name: the labkit model name, used in messages.

    Returns:
        Logits ``(B, classes, H, W)``.

    Shape:
        ``(B, in_channels, H, W)`` -> ``(B, classes, H, W)``; H, W multiples of 32.
    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        in_channels: int = 3,
        classes: int = 1,
        encoder_weights: str | None = None,
        weights_path: str | Path | None = None,
        dropout: float = 0.0,
        pad: bool = False,
        name: str = "unet-resnet34",
    ) -> None:
        import segmentation_models_pytorch as smp

        for arg, value in (("in_channels", in_channels), ("classes", classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1, got {value!r}")
        super().__init__(name, in_channels, classes, pad)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        if encoder_weights is not None and weights_path is not None:
            raise ValueError(
                f"{name}: pass either encoder_weights={encoder_weights!r} (download) or "
                f"weights_path={str(weights_path)!r} (local file), not both"
            )
        settings = None
        if encoder_weights is not None:
            settings = hub_settings(encoder_name, encoder_weights)
            check_download_possible(name, encoder_name, settings)
        try:
            net = smp.Unet(
                encoder_name,
                encoder_weights=encoder_weights,
                in_channels=in_channels,
                classes=classes,
            )
        except OSError as err:  # hub/HTTP errors are OSErrors; turn them into a clear one
            if settings is None:  # without weights smp does no I/O: not a download problem
                raise
            raise RuntimeError(offline_help(name, encoder_name, settings, str(err))) from err
        self.encoder = net.encoder
        # smp's EfficientNet encoders keep the classifier's 1x1 "head" conv + BN, which
        # their forward never runs (0.4M dead parameters in B0): drop them so parameter
        # counts are honest and every parameter gets a gradient.
        for unused in _UNUSED_ENCODER_PARTS:
            if hasattr(self.encoder, unused):
                delattr(self.encoder, unused)
        self.decoder = net.decoder
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.segmentation_head = net.segmentation_head
        if weights_path is not None:
            load_encoder_weights(self.encoder, weights_path, in_channels)
        self.name, self.encoder_name = name, encoder_name
        self.stride = int(self.encoder.output_stride)
        # smp >= 0.5 decoders take a list of features, older ones take *features.
        params = inspect.signature(self.decoder.forward).parameters.values()
        self._decoder_star_args = any(p.kind is p.VAR_POSITIONAL for p in params)

    def segment(self, x: Tensor) -> Tensor:
        features = self.encoder(x)  # 6 maps: the input, then strides 2, 4, 8, 16, 32
        if self._decoder_star_args:
            decoded = self.decoder(*features)
        else:
            decoded = self.decoder(features)  # (B, 16, H, W)
        return self.segmentation_head(self.dropout(decoded))


def _builder(name: str, doc: str) -> Callable[..., PretrainedUNet]:
    """A builder for the labkit model ``name`` (its encoder from `ENCODERS`), with ``doc``.

    The three builders share one signature, so it is written once, here.
    """

    def build(
        in_channels: int = 3,
        classes: int = 1,
        encoder_weights: str | None = None,
        weights_path: str | Path | None = None,
        dropout: float = 0.0,
        pad: bool = False,
    ) -> PretrainedUNet:
        return PretrainedUNet(
            ENCODERS[name],
            in_channels=in_channels,
            classes=classes,
            encoder_weights=encoder_weights,
            weights_path=weights_path,
            dropout=dropout,
            pad=pad,
            name=name,
        )

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    build.__doc__ = doc
    return build


def set_batch_norm_momentum(model: nn.Module, momentum: float) -> int:
    """Set the momentum of every batch norm in ``model`` (in place); returns how many.

    A batch norm normalises with the batch's statistics in training mode and with running
    averages of them in eval mode; ``momentum`` is the weight of each new batch in those
    averages. smp's EfficientNet encoders keep TensorFlow's setting (0.99 there, 0.01 in
    PyTorch's convention), made for long trainings from ImageNet statistics. From a random
    start the averages then lag behind the network: after the ~100 steps of a smoke run
    0.99^100 = 37 % of them is still the initial values, 24 % comes from the first 50
    steps, when the weights (so the activations) were very different, and only 39 % from
    the last 50. The model
    that learned in training mode then scores far lower in eval mode (benchmarks/RESULTS.md
    measures it, and that re-estimating the averages with the same weights repairs it).
    The smoke profile of labs 04 and 05 sets 0.1, PyTorch's default (ResNet34's).

    Args:
        model: any module; its 1-, 2- and 3-D batch norms change.
        momentum: in (0, 1].

    Raises:
        ValueError: ``momentum`` is not in (0, 1].
    """
    if type(momentum) not in (int, float) or not 0 < momentum <= 1:
        raise ValueError(f"momentum must be a number in (0, 1], got {momentum!r}")
    norms = [m for m in model.modules() if isinstance(m, _BATCH_NORMS)]
    for m in norms:
        m.momentum = float(momentum)
    return len(norms)


unet_resnet34 = _builder(
    "unet-resnet34",
    """U-Net with a ResNet34 encoder (lab 04, report 002; 24.4M parameters for 3 -> 2).

    Report 002's setup: ``unet_resnet34(in_channels=3, classes=2, encoder_weights="imagenet")``.
    Arguments as in :class:`PretrainedUNet`.
    """,
)
unet_efficientnet_b0 = _builder(
    "unet-efficientnet-b0",
    """U-Net with an EfficientNet-B0 encoder (labs 04-05, report 003's infection stage, 5.8M).

    Report 003's infection stage: ``in_channels=4`` (RGB + lung mask), ``dropout=0.3``.
    Arguments as in :class:`PretrainedUNet`.
    """,
)
unet_efficientnet_b3 = _builder(
    "unet-efficientnet-b3",
    """U-Net with an EfficientNet-B3 encoder (labs 04-05, report 003's lung stage, 12.6M).

    Arguments as in :class:`PretrainedUNet`.
    """,
)
