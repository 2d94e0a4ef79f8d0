"""Segmentation losses: functions of logits (``functional``) and their ``nn.Module``
wrappers with the ``LOSSES`` table and ``build_loss(name)`` (``modules``).

Conventions (see ``labkit.losses.functional``): logits (B, 1|2, H, W), a {0, 1} target
(B, 1, H, W), one infection logit per pixel. Each docstring says what the loss does on an
image whose target is empty (Non-COVID and Normal images).
"""

from labkit.losses.functional import (
    bce_loss,
    dice_loss,
    focal_loss,
    infection_logits,
    jaccard_loss,
    mse_loss,
)
from labkit.losses.modules import (
    LOSSES,
    BCEDiceLoss,
    BCELoss,
    CombinedLoss,
    DeepSupervisionLoss,
    DiceBCELoss,
    DiceLoss,
    FocalJaccardLoss,
    FocalLoss,
    MSELoss,
    build_loss,
)

__all__ = [
    "LOSSES",
    "BCEDiceLoss",
    "BCELoss",
    "CombinedLoss",
    "DeepSupervisionLoss",
    "DiceBCELoss",
    "DiceLoss",
    "FocalJaccardLoss",
    "FocalLoss",
    "MSELoss",
    "bce_loss",
    "build_loss",
    "dice_loss",
    "focal_loss",
    "infection_logits",
    "jaccard_loss",
    "mse_loss",
]
