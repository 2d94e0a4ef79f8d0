"""Segmentation losses computed from logits, and ``build_loss(name)``.

Every loss takes ``logits`` of shape (B, C, H, W) -- C = 1 for a sigmoid head, C = 2 for a
softmax head whose channel 1 is infection -- and a ``target`` mask of shape (B, 1, H, W) with
values in {0, 1} (float, uint8 or bool). It returns a scalar tensor.

Both heads go through one number per pixel, the *infection logit* z (see `infection_logits`):
for two classes softmax(l)[1] == sigmoid(l1 - l0) exactly, so every loss below works on
either head. Log-probabilities come from BCE-with-logits / ``logsigmoid``, never
``log(sigmoid(z))``, so logits of +-100 give finite losses and finite gradients.

Non-COVID and Normal images have empty infection masks, so each docstring says what the
loss does on an image whose target is empty.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


def _shape(x: object) -> str:
    return f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__


def _prepare(logits: Tensor, target: Tensor, where: str) -> tuple[Tensor, Tensor]:
    """Validate a (logits, target) pair once; return the infection logit z and a float mask."""
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


def infection_logits(logits: Tensor) -> Tensor:
    """The infection logit z of either head: sigmoid(z) is the infection probability.

    Args:
        logits: (B, 1, H, W) sigmoid logits, returned as they are, or (B, 2, H, W) softmax
            logits, for which z = l1 - l0 because softmax(l)[1] = sigmoid(l1 - l0).

    Returns:
        (B, 1, H, W) tensor.
    """
    if logits.ndim != 4 or logits.shape[1] not in (1, 2):
        raise ValueError(f"logits must have shape (B, 1|2, H, W), got {_shape(logits)}")
    return logits if logits.shape[1] == 1 else logits[:, 1:2] - logits[:, 0:1]


def bce_loss(logits: Tensor, target: Tensor, pos_weight: float | None = None) -> Tensor:
    """Binary cross-entropy with logits, averaged over all pixels of the batch.

    Empty mask: every pixel is a negative, so the image contributes the mean of
    -log(1 - p) = softplus(z); it tends to 0 as the prediction becomes confidently empty.
    ``pos_weight`` (> 0) multiplies the loss on infection pixels (sparse masks).
    """
    return _bce(*_prepare(logits, target, "bce_loss"), pos_weight)


def _bce(z: Tensor, y: Tensor, pos_weight: float | None = None) -> Tensor:
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=z.device)
    return F.binary_cross_entropy_with_logits(z, y, pos_weight=pw)


def mse_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between the infection probability and the mask (report 000).

    Empty mask: the image contributes mean(p ** 2), 0 for an empty prediction.
    """
    z, y = _prepare(logits, target, "mse_loss")
    return F.mse_loss(torch.sigmoid(z), y)


def _overlap(z: Tensor, y: Tensor, smooth: float, jaccard: bool, background: bool) -> Tensor:
    """Mean over classes of 1 - smoothed soft Dice (or Jaccard), per image. Returns (B,)."""
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
    z, y = _prepare(logits, target, "dice_loss")
    return _overlap(z, y, smooth, False, include_background).mean()


def jaccard_loss(
    logits: Tensor, target: Tensor, smooth: float = 1.0, include_background: bool = False
) -> Tensor:
    """Soft Jaccard (IoU) loss per image, averaged over the batch.

    Per image and class: 1 - (sum(p * y) + s) / (sum(p) + sum(y) - sum(p * y) + s).
    Empty mask: the infection term is P / (P + s) (P = predicted area), as for Dice; with
    ``include_background`` the background term is P / (N + s) for an N-pixel image, and the
    image's loss is the mean of the two.
    """
    z, y = _prepare(logits, target, "jaccard_loss")
    return _overlap(z, y, smooth, True, include_background).mean()


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
    return _focal(*_prepare(logits, target, "focal_loss"), gamma, alpha)


def _focal(z: Tensor, y: Tensor, gamma: float = 2.0, alpha: float | None = None) -> Tensor:
    nll = F.binary_cross_entropy_with_logits(z, y, reduction="none")  # -log(p_t)
    # 1 - p_t = -expm1(-nll) keeps precision when p_t ~ 1; the clamp keeps gamma < 1 from
    # producing an infinite gradient at exactly 1 - p_t = 0.
    loss = (-torch.expm1(-nll)).clamp_min(1e-12) ** gamma * nll
    if alpha is not None:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    return loss.mean()


def _nonneg(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_args(smooth: float = 1.0, gamma: float = 0.0, alpha: float | None = None) -> None:
    if not smooth > 0:
        raise ValueError(f"smooth must be > 0 (0 makes empty masks 0/0), got {smooth!r}")
    _nonneg(gamma=gamma)
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be None or in [0, 1], got {alpha!r}")


class BCELoss(nn.Module):
    """`bce_loss` as a module. Empty mask: mean softplus(z), -> 0 for confident empties."""

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        if pos_weight is not None and not pos_weight > 0:
            raise ValueError(f"pos_weight must be None or > 0, got {pos_weight!r}")
        self.pos_weight = pos_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return bce_loss(logits, target, self.pos_weight)


class MSELoss(nn.Module):
    """`mse_loss` on probabilities (report 000). Empty mask: mean(p ** 2)."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return mse_loss(logits, target)


class DiceLoss(nn.Module):
    """Per-image soft `dice_loss`. Empty mask: P / (P + smooth), P = predicted area."""

    def __init__(self, smooth: float = 1.0, include_background: bool = False) -> None:
        super().__init__()
        _check_args(smooth)
        self.smooth, self.include_background = smooth, include_background

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(logits, target, self.smooth, self.include_background)


class FocalLoss(nn.Module):
    """Binary `focal_loss`. Empty mask: background-only focal terms, -> 0 for empties."""

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        _check_args(gamma=gamma, alpha=alpha)
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha)


class DiceBCELoss(nn.Module):
    """0.7 * Dice + 0.3 * BCE (report 003, stage 1: lungs).

    Empty mask: 0.7 * P / (P + smooth) + 0.3 * mean softplus(z); ~0 for an empty prediction.
    """

    def __init__(
        self, dice_weight: float = 0.7, bce_weight: float = 0.3, smooth: float = 1.0
    ) -> None:
        super().__init__()
        _nonneg(dice_weight=dice_weight, bce_weight=bce_weight)
        _check_args(smooth)
        self.dice_weight, self.bce_weight, self.smooth = dice_weight, bce_weight, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        z, y = _prepare(logits, target, "DiceBCELoss")  # validate once for both terms
        return self.dice_weight * _overlap(z, y, self.smooth, False, False).mean() + (
            self.bce_weight * _bce(z, y)
        )


class CombinedLoss(nn.Module):
    """0.5 * Dice + 0.3 * BCE + 0.2 * focal (report 003, stage 2: infection).

    Empty mask: the weighted sum of the three empty-mask behaviours: Dice P / (P + smooth),
    BCE mean softplus(z), focal background terms; ~0 for a confidently empty prediction.
    """

    def __init__(
        self,
        dice_weight: float = 0.5,
        bce_weight: float = 0.3,
        focal_weight: float = 0.2,
        gamma: float = 2.0,
        alpha: float | None = None,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        _nonneg(dice_weight=dice_weight, bce_weight=bce_weight, focal_weight=focal_weight)
        _check_args(smooth, gamma, alpha)
        self.weights = (dice_weight, bce_weight, focal_weight)
        self.gamma, self.alpha, self.smooth = gamma, alpha, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        z, y = _prepare(logits, target, "CombinedLoss")
        wd, wb, wf = self.weights
        return (
            wd * _overlap(z, y, self.smooth, False, False).mean()
            + wb * _bce(z, y)
            + wf * _focal(z, y, self.gamma, self.alpha)
        )


class FocalJaccardLoss(nn.Module):
    """Categorical focal + Jaccard loss for the 2-class softmax head (report 002).

    The mask is one-hot encoded internally (background, infection). By default, as in
    report 002's one-hot setup, the Jaccard term averages the background and infection
    classes per image. Also accepts 1-channel logits (treated as z).

    Empty mask: focal background terms (-> 0 for confident empties) plus the Jaccard term
    0.5 * (P / (P + smooth) + P / (N + smooth)) for predicted area P in an N-pixel image
    (P / (P + smooth) without background).
    """

    def __init__(
        self,
        focal_weight: float = 1.0,
        jaccard_weight: float = 1.0,
        gamma: float = 2.0,
        alpha: float | None = None,
        smooth: float = 1.0,
        include_background: bool = True,
    ) -> None:
        super().__init__()
        _nonneg(focal_weight=focal_weight, jaccard_weight=jaccard_weight)
        _check_args(smooth, gamma, alpha)
        self.focal_weight, self.jaccard_weight = focal_weight, jaccard_weight
        self.gamma, self.alpha, self.smooth = gamma, alpha, smooth
        self.include_background = include_background

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        z, y = _prepare(logits, target, "FocalJaccardLoss")
        jac = _overlap(z, y, self.smooth, True, self.include_background).mean()
        return self.focal_weight * _focal(z, y, self.gamma, self.alpha) + self.jaccard_weight * jac


class BCEDiceLoss(nn.Module):
    """0.5 * BCE + 1.0 * Dice (report 004).

    Empty mask: 0.5 * mean softplus(z) + P / (P + smooth); ~0 for an empty prediction.
    """

    def __init__(
        self, bce_weight: float = 0.5, dice_weight: float = 1.0, smooth: float = 1.0
    ) -> None:
        super().__init__()
        _nonneg(bce_weight=bce_weight, dice_weight=dice_weight)
        _check_args(smooth)
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        z, y = _prepare(logits, target, "BCEDiceLoss")
        return self.bce_weight * _bce(z, y) + (
            self.dice_weight * _overlap(z, y, self.smooth, False, False).mean()
        )


class DeepSupervisionLoss(nn.Module):
    """Deep supervision (report 004): weight the final output and the auxiliary heads.

    Given ``[final, aux_1, ..., aux_k]`` the loss is
    ``final_weight * base(final) + (1 - final_weight) * mean_i base(aux_i)``, i.e. by default
    0.5 on the final output and 0.5 spread evenly over the other heads. A single-element list
    or a plain tensor (eval mode) gives ``base(final)``. Every head is compared with the same
    full-resolution target. Empty mask: whatever ``base`` does, per head.

    Args:
        base: any loss ``(logits, target) -> scalar``.
        final_weight: weight of the final output, in [0, 1].
    """

    def __init__(self, base: Callable[[Tensor, Tensor], Tensor], final_weight: float = 0.5):
        super().__init__()
        if not callable(base):
            raise ValueError(f"base must be a loss (a callable), got {type(base).__name__}")
        if not 0 <= final_weight <= 1:
            raise ValueError(f"final_weight must be in [0, 1], got {final_weight!r}")
        self.base, self.final_weight = base, final_weight

    def forward(self, logits: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        if isinstance(logits, Tensor):
            return self.base(logits, target)
        if len(logits) == 0:
            raise ValueError("DeepSupervisionLoss: got an empty list of logits")
        final, *aux = logits
        if not aux:
            return self.base(final, target)
        aux_loss = torch.stack([self.base(a, target) for a in aux]).mean()
        return self.final_weight * self.base(final, target) + (1 - self.final_weight) * aux_loss


LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "mse": MSELoss,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "dice_bce": DiceBCELoss,
    "combined": CombinedLoss,
    "focal_jaccard": FocalJaccardLoss,
    "bce_dice": BCEDiceLoss,
}


def build_loss(name: str, deep_supervision: bool = False, **kwargs: float) -> nn.Module:
    """Build a loss by name, e.g. ``build_loss("dice_bce")`` or ``build_loss("bce", pos_weight=5)``.

    Args:
        name: a key of `LOSSES`.
        deep_supervision: wrap the loss in `DeepSupervisionLoss` (for models that return a
            list of logits in training mode).
        **kwargs: the loss class's keyword arguments.

    Returns:
        An ``nn.Module`` called as ``loss(logits, target)``.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    cls = LOSSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"loss {name!r} got unknown argument(s) {unknown}; it accepts {accepted or 'none'}"
        )
    loss = cls(**kwargs)
    return DeepSupervisionLoss(loss) if deep_supervision else loss
