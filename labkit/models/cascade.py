"""The lung -> infection cascade of lab 05 (report 003).

Stage 1 segments the lungs; stage 2 segments infection from the image *plus* the stage-1
lung mask as an extra channel (4 channels for RGB input, 2 for grey), and its prediction
is forced to zero outside the lungs: infection cannot lie outside the lung, so the model
should not be able to produce false positives there.

Masking convention: outside the lung mask the infection logits are set to the finite
value ``OUTSIDE_LUNG_LOGIT = -1e4`` (for a 2-class head: background logit 0, infection
logit -1e4). sigmoid / softmax then give exactly 0.0 infection probability there (in
float32, bfloat16 and float16), while losses computed from the logits stay finite
(``-inf`` would turn BCE into NaN). No gradient flows through masked pixels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from labkit.models.heads import final_output, infection_probability

OUTSIDE_LUNG_LOGIT = -1e4


class CascadeOutput(NamedTuple):
    """What :meth:`CascadeModel.forward_stages` returns."""

    infection: Tensor | list[Tensor]  # masked infection logits (B, classes, H, W) (list: DS)
    lung: Tensor  # lung logits (B, lung classes, H, W)
    lung_mask: Tensor  # (B, 1, H, W) float {0, 1}: lung probability > threshold


def mask_outside_lung(logits: Tensor, lung_mask: Tensor) -> Tensor:
    """Set logits outside ``lung_mask`` so that the infection probability there is 0.

    Args:
        logits: ``(B, classes, H, W)`` infection logits.
        lung_mask: ``(B, 1, H, W)``, nonzero inside the lung.

    Returns:
        Logits of the same shape: unchanged inside the lung; outside, -1e4 for a 1-class
        head, and (0, -1e4, -1e4, ...) for a softmax head (background certain).
    """
    inside = lung_mask > 0  # (B, 1, H, W), broadcasts over classes
    outside_value = torch.full_like(logits, OUTSIDE_LUNG_LOGIT)
    if logits.shape[1] > 1:
        outside_value[:, 0] = 0.0
    return torch.where(inside, logits, outside_value)


class CascadeModel(nn.Module):
    """Two-stage cascade (lab 05, report 003): lung model, then infection model.

    ``forward(image)`` runs both stages: lung logits -> lung mask (probability >
    ``threshold``, computed without gradient) -> infection logits from
    ``cat(image, lung_mask)`` -> set to -1e4 outside the lung (probability 0, see the module
    docstring). Each stage is an ordinary model that can be trained on its own:

    * lungs: ``model.lung(image)`` against the lung masks;
    * infection: ``model.infection(model.infection_input(image, lung_mask))`` with the true
      lung masks, or ``model(image)`` to train on stage-1 predictions (set
      ``freeze_lung=True`` so that stage stays fixed, in eval mode).

    Args:
        lung: stage-1 model, ``(B, C, H, W)`` -> lung logits (1 or 2 classes).
        infection: stage-2 model, ``(B, C + 1, H, W)`` -> infection logits.
        threshold: lung probability above which a pixel counts as lung.
        freeze_lung: keep the lung stage's parameters fixed and its batch norm in eval mode.

    Returns:
        Masked infection logits ``(B, classes, H, W)`` (a list if the infection model uses
        deep supervision and is training).

    Shape:
        ``(B, C, H, W)`` -> ``(B, classes, H, W)``.
    """

    def __init__(
        self,
        lung: nn.Module,
        infection: nn.Module,
        threshold: float = 0.5,
        freeze_lung: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        self.lung = lung
        self.infection = infection
        self.threshold = threshold
        self.freeze_lung = freeze_lung
        self.stride = math.lcm(
            int(getattr(lung, "stride", 1)), int(getattr(infection, "stride", 1))
        )
        if freeze_lung:
            self.lung.requires_grad_(False)
            self.lung.eval()

    def train(self, mode: bool = True) -> CascadeModel:
        super().train(mode)
        if self.freeze_lung:
            self.lung.eval()  # a frozen stage keeps its batch-norm statistics
        return self

    @staticmethod
    def infection_input(image: Tensor, lung_mask: Tensor) -> Tensor:
        """Stage-2 input: the image with the lung mask appended as a last channel.

        Shape:
            image ``(B, C, H, W)``, lung_mask ``(B, 1, H, W)`` -> ``(B, C + 1, H, W)``.
        """
        if lung_mask.dim() != 4 or lung_mask.shape[1] != 1:
            raise ValueError(
                f"lung_mask must have shape (B, 1, H, W), got {tuple(lung_mask.shape)}"
            )
        if image.shape[0] != lung_mask.shape[0] or image.shape[-2:] != lung_mask.shape[-2:]:
            raise ValueError(
                f"image {tuple(image.shape)} and lung_mask {tuple(lung_mask.shape)} must share "
                "batch size, height and width"
            )
        return torch.cat([image, lung_mask.to(image.dtype)], dim=1)

    def predict_lung(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Stage 1 without gradient: ``(lung logits, lung mask (B, 1, H, W) float {0, 1})``."""
        with torch.no_grad():
            lung_logits = final_output(self.lung(image))  # (B, 1|2, H, W)
            lung_mask = (infection_probability(lung_logits) > self.threshold).to(image.dtype)
        return lung_logits, lung_mask

    def forward_stages(self, image: Tensor) -> CascadeOutput:
        """Both stages, returning the lung prediction as well (for plots and metrics)."""
        lung_logits, lung_mask = self.predict_lung(image)
        out = self.infection(self.infection_input(image, lung_mask))
        if isinstance(out, list):
            masked: Tensor | list[Tensor] = [mask_outside_lung(o, lung_mask) for o in out]
        else:
            masked = mask_outside_lung(out, lung_mask)
        return CascadeOutput(masked, lung_logits, lung_mask)

    def forward(self, image: Tensor) -> Tensor | list[Tensor]:
        return self.forward_stages(image).infection
