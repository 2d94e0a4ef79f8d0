"""The segmentation models of the six labs, by name: ``build_model(name, **kwargs)``.

=========================  ====  ======================================================
name                       lab   what
=========================  ====  ======================================================
``unet``                   02    baseline U-Net, 3 down/up steps (report 001)
``resunet``                03    U-Net with residual encoder blocks (report 000)
``unet-resnet34``          04    smp U-Net, ResNet34 encoder (report 002)
``unet-efficientnet-b0``   04/05 smp U-Net, EfficientNet-B0 encoder (report 003)
``unet-efficientnet-b3``   04/05 smp U-Net, EfficientNet-B3 encoder (report 003)
``cascade``                05    lung model -> infection model masked to the lung (report 003)
``fvpaspp``                06    U-Net + FV blocks + PASPP + deep supervision (report 004)
``fvpaspp3d``              07    the same in 3-D, on CT volumes (report 004's setting)
=========================  ====  ======================================================

Every model takes ``(B, C, H, W)`` float images and returns **logits** ``(B, classes, H,
W)`` (1 class: sigmoid; 2 classes: softmax, channel 1 = infection), exposes ``.stride``
(H and W must be multiples of it, or build with ``pad=True``), and, with deep supervision
in training mode, returns a ``list`` of full-resolution logits, final output first.

Example::

    import labkit as lk
    model = lk.models.build_model("unet", in_channels=1, base_width=32)
    print(lk.models.summary(model))
"""

from labkit.models.blocks import ConvBNReLU, DoubleConv, ResidualBlock, UpBlock
from labkit.models.cascade import (
    OUTSIDE_LUNG_LOGIT,
    CascadeModel,
    CascadeOutput,
    mask_outside_lung,
)
from labkit.models.fvpaspp import PASPP, FVBlock, FVPASPPUNet
from labkit.models.fvpaspp3d import FVPASPPUNet3d
from labkit.models.pretrained import (
    PretrainedUNet,
    set_batch_norm_momentum,
    unet_efficientnet_b0,
    unet_efficientnet_b3,
    unet_resnet34,
)
from labkit.models.registry import (
    MODELS,
    ModelSummary,
    build_from_spec,
    build_model,
    cascade,
    count_parameters,
    summary,
)
from labkit.models.resunet import ResUNet
from labkit.models.unet import UNet
from labkit.models.weights import load_encoder_weights

__all__ = [
    "MODELS",
    "OUTSIDE_LUNG_LOGIT",
    "PASPP",
    "CascadeModel",
    "CascadeOutput",
    "ConvBNReLU",
    "DoubleConv",
    "FVBlock",
    "FVPASPPUNet",
    "FVPASPPUNet3d",
    "ModelSummary",
    "PretrainedUNet",
    "ResUNet",
    "ResidualBlock",
    "UNet",
    "UpBlock",
    "build_from_spec",
    "build_model",
    "cascade",
    "count_parameters",
    "load_encoder_weights",
    "mask_outside_lung",
    "set_batch_norm_momentum",
    "summary",
    "unet_efficientnet_b0",
    "unet_efficientnet_b3",
    "unet_resnet34",
]
