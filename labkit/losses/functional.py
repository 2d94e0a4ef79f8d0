"""Segmentation losses as functions of logits: the arithmetic behind ``labkit.losses``.

Every loss takes ``logits`` of shape (B, C, H, W) -- C = 1 for a sigmoid head, C = 2 for a
softmax head whose channel 1 is infection -- and a ``target`` mask of shape (B, 1, H, W) with
values in {0, 1} (float, uint8 or bool). It returns a scalar tensor.

Both heads go through one number per pixel, the *infection logit* z (``labkit.models.heads.infection_logits``):
for two classes softmax(l)[1] == sigmoid(l1 - l0) exactly, so every loss below works on
either head. Log-probabilities come from BCE-with-logits / ``logsigmoid``, never
``log(sigmoid(z))``, so logits of +-100 give finite losses and finite gradients.

Non-COVID and Normal images have empty infection masks, so each docstring says what the
loss does on an image whose target is empty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from labkit.models.heads import infection_logits

__all__ = [
    "bce_loss",
    "bce_term",
    "dice_loss",
    "focal_loss",
    "focal_term",
    "infection_logits",
    "jaccard_loss",
    "mse_loss",
    "overlap_term",
    "prepare",
]


def _shape(x: object) -> str:
    return f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__


def prepare(logits: Tensor, target: Tensor, where: str) -> tuple[Tensor, Tensor]:
    """Validate a (logits, target) pair once; return the infection logit z and a float mask.

    The ``*_term`` functions below take its output, so a loss made of several terms
    (``labkit.losses.modules.CombinedLoss``) validates its inputs only once.

    Args:
        logits: (B, 1|2, H, W) float logits (not a deep-supervision list).
        target: (B, 1, H, W) mask with values in {0, 1}.
        where: the caller's name, for error messages.

    Returns:
        ``(z, y)``: the (B, 1, H, W) infection logit (float32 under AMP) and the mask as
        the same float dtype.

    Raises:
        ValueError: naming ``where`` and what was expected.
    """
    if isinstance(logits, (list, tuple)):
        raise ValueError(
            f"{where}: got a list of {len(logits)} logits (a deep-supervision model in training "
            "mode); wrap the loss with DeepSupervisionLoss(loss) or "
            "build_loss(name, deep_supervision=True)"
        )
    if not (isinstance(logits, Tensor) and logits.is_floating_point() and logits.ndim == 4):
        raise ValueError(
            f"{where}: logits must be a float tensor (B, C, H, W), got {_shape(logits)}"
        )
    if logits.shape[1] not in (1, 2):
        raise ValueError(
            f"{where}: logits must have 1 channel (sigmoid) or 2 (softmax, channel 1 = "
            f"infection), got shape {tuple(logits.shape)}"
        )
    b, _, h, w = logits.shape
    if not isinstance(target, Tensor) or tuple(target.shape) != (b, 1, h, w):
        raise ValueError(
            f"{where}: target must have shape (B, 1, H, W) = {(b, 1, h, w)} to match logits "
            f"{tuple(logits.shape)}, got {_shape(target)}"
        )
    # fp16 sums of 256*256 probabilities overflow (max 65504): compute in float32 under AMP.
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    target = target.to(logits.dtype)
    if torch.any((target != 0) & (target != 1)):  # one reduction; catches 0/255 masks
        raise ValueError(
            f"{where}: target must be a binary mask with values in {{0, 1}}, got values in "
            f"[{target.min().item():g}, {target.max().item():g}] (divide 0/255 masks by 255)"
        )
    return infection_logits(logits), target


def bce_loss(logits: Tensor, target: Tensor, pos_weight: float | None = None) -> Tensor:
    """Binary cross-entropy with logits, averaged over all pixels of the batch.

    Empty mask: every pixel is a negative, so the image contributes the mean of
    -log(1 - p) = softplus(z); it tends to 0 as the prediction becomes confidently empty.
    ``pos_weight`` (> 0) multiplies the loss on infection pixels (sparse masks).
    """
    return bce_term(*prepare(logits, target, "bce_loss"), pos_weight)


def bce_term(z: Tensor, y: Tensor, pos_weight: float | None = None) -> Tensor:
    """`bce_loss` of an infection logit z and a float mask y, both from `prepare`."""
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=z.device)
    return F.binary_cross_entropy_with_logits(z, y, pos_weight=pw)


def mse_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between the infection probability and the mask (report 000).

    Empty mask: the image contributes mean(p ** 2), 0 for an empty prediction.
    """
    z, y = prepare(logits, target, "mse_loss")
    return F.mse_loss(torch.sigmoid(z), y)


def overlap_term(z: Tensor, y: Tensor, smooth: float, jaccard: bool, background: bool) -> Tensor:
    """Mean over classes of 1 - smoothed soft Dice (or Jaccard), per image.

    Args:
        z, y: infection logit and float mask (B, 1, H, W), from `prepare`.
        smooth: added to numerator and denominator (> 0: empty masks stay defined).
        jaccard: Jaccard (IoU) instead of Dice.
        background: also score the background class and average the two per image.

    Returns:
        (B,) per-image losses (`dice_loss` / `jaccard_loss` average them).
    """
    p = torch.sigmoid(z)  # (B, 1, H, W)
    if background:  # sigmoid(-z) is the background probability, more exact than 1 - p
        p, y = torch.cat([torch.sigmoid(-z), p], 1), torch.cat([1 - y, y], 1)
    inter = (p * y).sum((2, 3))  # (B, K): sums per image, never across the batch
    total = (p + y).sum((2, 3))
    if jaccard:
        score = (inter + smooth) / (total - inter + smooth)
    else:
        score = (2 * inter + smooth) / (total + smooth)
    return 1 - score.mean(1)


def dice_loss(
    logits: Tensor, target: Tensor, smooth: float = 1.0, include_background: bool = False
) -> Tensor:
    """Soft Dice loss, computed per image and then averaged over the batch.

    Per image, with p the infection probability, y the mask and s = ``smooth``:
    loss = 1 - (2 * sum(p * y) + s) / (sum(p) + sum(y) + s).

    Empty mask: sum(y) = 0, so loss = P / (P + s) with P = sum(p), the predicted area. With
    s = 1 an empty prediction gives ~0 (exactly 0 only as P -> 0), one fully predicted pixel
    gives 0.5, and the loss approaches 1 as the predicted area grows (P = 99 gives 0.99).
    All-ones mask of N pixels predicted exactly: loss 0.

    Args:
        include_background: also score the background class (1 - y against sigmoid(-z)) and
            average the two classes' losses per image.
    """
    z, y = prepare(logits, target, "dice_loss")
    return overlap_term(z, y, smooth, False, include_background).mean()


def jaccard_loss(
    logits: Tensor, target: Tensor, smooth: float = 1.0, include_background: bool = False
) -> Tensor:
    """Soft Jaccard (IoU) loss per image, averaged over the batch.

    Per image and class: 1 - (sum(p * y) + s) / (sum(p) + sum(y) - sum(p * y) + s).
    Empty mask: the infection term is P / (P + s) (P = predicted area), as for Dice; with
    ``include_background`` the background term is P / (N + s) for an N-pixel image, and the
    image's loss is the mean of the two.
    """
    z, y = prepare(logits, target, "jaccard_loss")
    return overlap_term(z, y, smooth, True, include_background).mean()


def focal_loss(
    logits: Tensor, target: Tensor, gamma: float = 2.0, alpha: float | None = None
) -> Tensor:
    """Focal loss -alpha_t * (1 - p_t) ** gamma * log(p_t), averaged over all pixels.

    p_t is the probability given to the true class. For two classes the categorical focal
    loss of a softmax head (report 002) is exactly this binary loss on the infection logit.
    ``alpha`` (in [0, 1]) weights infection pixels by alpha and background by 1 - alpha;
    None weights both by 1. Empty mask: every pixel is background, and confidently empty
    predictions (p_t near 1) are down-weighted by (1 - p_t) ** gamma towards 0.
    """
    return focal_term(*prepare(logits, target, "focal_loss"), gamma, alpha)


def focal_term(z: Tensor, y: Tensor, gamma: float = 2.0, alpha: float | None = None) -> Tensor:
    """`focal_loss` of an infection logit z and a float mask y, both from `prepare`."""
    nll = F.binary_cross_entropy_with_logits(z, y, reduction="none")  # -log(p_t)
    # 1 - p_t = -expm1(-nll) keeps precision when p_t ~ 1; the clamp keeps gamma < 1 from
    # producing an infinite gradient at exactly 1 - p_t = 0.
    loss = (-torch.expm1(-nll)).clamp_min(1e-12) ** gamma * nll
    if alpha is not None:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    return loss.mean()
