"""Segmentation metrics: per-image and pooled, with one stated empty-mask policy.

The empty-mask policy (ARCHITECTURE.md). An image whose ground truth is empty (every
Non-COVID and Normal image) has no infection to find: its sensitivity is 0/0, and its Dice
and IoU are 0/0 for an empty prediction and 0 for any predicted pixel (they then measure a
false alarm, not outlining). By default all three are NaN and the image is **excluded** from per-image means, which
report how many images were scored and excluded. With an explicit ``empty_score`` (e.g. 1.0)
an empty-truth image instead scores ``empty_score`` when the prediction is empty too and 0
when any pixel is predicted.

Sensitivity (recall) = tp / (tp + fn): the fraction of the infected pixels that the model
found. Precision = tp / (tp + fp): the fraction of the predicted pixels that are infected.
An image with infection but an empty prediction has precision 0/0; labkit scores it **0**
(labkit's convention, like ``zero_division=0`` in scikit-learn), as its Dice is 0. Dropping
it instead would let a model that predicts nothing on its hard images raise its mean
precision: 10 infected images, perfect on 1 and empty on 9, would average precision 1.0
with Dice 0.1; here both are 0.1. So on images with infection, precision is scored on the
same images as Dice.

| truth     | prediction | Dice / IoU / sensitivity      | precision             | specificity |
| --------- | ---------- | ----------------------------- | --------------------- | ----------- |
| empty     | empty      | NaN (or empty_score)          | NaN (or empty_score)  | 1           |
| empty     | not empty  | NaN (or 0 with empty_score)   | 0                     | tn/(tn+fp)  |
| not empty | empty      | 0                             | 0                     | 1           |
| not empty | not empty  | the usual ratio               | tp/(tp+fp)            | tn/(tn+fp)  |

Specificity is NaN only for an image with no negative pixel. Pooled (dataset-level) scores
sum TP/FP/FN/TN over images first, ignore ``empty_score``, and follow the same table (NaN
only where the table says NaN). On empty-truth images `MetricAccumulator` reports the
false-positive image rate: the fraction with any predicted pixel. A pixel is predicted
positive when its probability is ``>= threshold`` (the same rule as
``segmentation_models_pytorch.metrics.get_stats``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from labkit.models.heads import infection_probability

__all__ = [
    "SCORES",
    "SCORE_NAMES",
    "MetricAccumulator",
    "confusion_counts",
    "dice",
    "iou",
    "mae",
    "nanmean",
    "precision",
    "probabilities",
    "rmse",
    "scores_from_counts",
    "sensitivity",
    "specificity",
]

# The four scores the reports quote, in the order every table prints them: one home for the
# names (reports, record_result, course tables, training history and plots import them).
SCORE_NAMES = ("dice", "iou", "sensitivity", "precision")
SCORES = (*SCORE_NAMES, "specificity")  # per image, under the empty-mask policy


def _shape(x: object) -> str:
    return f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__


def probabilities(logits: Tensor | Sequence[Tensor]) -> Tensor:
    """Infection probability from a model's logits (the head rule of ``labkit.models.heads``).

    Args:
        logits: (B, 1, H, W) sigmoid logits, (B, 2, H, W) softmax logits (channel 1 =
            infection), or a deep-supervision list whose element 0 (the final output) is used.

    Returns:
        (B, 1, H, W) float32 (or wider) probabilities in [0, 1].

    Raises:
        ValueError: not float logits (B, 1|2, H, W), or an empty list.
    """
    return infection_probability(logits)


def _binary(x: Tensor, name: str, like: Tensor | None = None) -> Tensor:
    """Check a (B, 1, H, W) mask with values in {0, 1} and return it as bool."""
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {_shape(x)}")
    if like is not None and x.shape != like.shape:
        raise ValueError(
            f"{name} shape {tuple(x.shape)} does not match the prediction {tuple(like.shape)}"
        )
    if x.dtype == torch.bool:
        return x
    if torch.any((x != 0) & (x != 1)):
        raise ValueError(
            f"{name} must hold only 0 and 1, got values in [{x.min().item():g}, "
            f"{x.max().item():g}] (threshold probabilities; divide 0/255 masks by 255)"
        )
    return x != 0


def confusion_counts(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image true/false positive/negative pixel counts.

    Args:
        pred: binary prediction (bool or {0, 1}), e.g. ``probabilities(logits) >= 0.5``.
        target: binary ground truth of the same shape.

    Returns:
        ``(tp, fp, fn, tn)``, each an int64 tensor of shape (B,) on the inputs' device.

    Shape:
        pred, target: (B, 1, H, W).
    """
    p = _binary(pred, "pred")
    t = _binary(target, "target", like=p)
    tp = (p & t).sum((1, 2, 3))
    fp = (p & ~t).sum((1, 2, 3))
    fn = (~p & t).sum((1, 2, 3))
    tn = p[0].numel() - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den as floats, NaN where den == 0 (float64 except on MPS, which lacks it)."""
    dtype = torch.float32 if num.device.type == "mps" else torch.float64
    num, den = num.to(dtype), den.to(dtype)
    return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, math.nan))


def _empty_truth_policy(score: Tensor, tp, fp, fn, empty_score: float | None) -> Tensor:
    truth_empty = (tp + fn) == 0
    if empty_score is None:
        return score.masked_fill(truth_empty, math.nan)
    pred_empty = (tp + fp) == 0
    # full_like keeps score's float64: torch.where on Python floats would round to float32
    fill = torch.where(pred_empty, torch.full_like(score, empty_score), torch.zeros_like(score))
    return torch.where(truth_empty, fill, score)


def dice(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, empty_score: float | None = None):
    """Dice = 2tp / (2tp + fp + fn) per image. Empty truth: NaN, or with ``empty_score``
    that value for an empty prediction and 0 otherwise. Returns float (B,)."""
    return _empty_truth_policy(_ratio(2 * tp, 2 * tp + fp + fn), tp, fp, fn, empty_score)


def iou(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, empty_score: float | None = None):
    """IoU (Jaccard) = tp / (tp + fp + fn) per image. Empty truth: as for `dice`."""
    return _empty_truth_policy(_ratio(tp, tp + fp + fn), tp, fp, fn, empty_score)


def sensitivity(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, empty_score: float | None = None):
    """Sensitivity (recall) = tp / (tp + fn) per image. Empty truth: as for `dice`."""
    return _empty_truth_policy(_ratio(tp, tp + fn), tp, fp, fn, empty_score)


def precision(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, empty_score: float | None = None):
    """Precision = tp / (tp + fp) per image. An empty prediction scores 0 when the truth has
    infection (labkit's convention, see the module docstring) and NaN when the truth is empty
    too, or ``empty_score`` when one is given. Empty truth with predicted pixels gives 0."""
    missed = ((tp + fp) == 0) & ((tp + fn) > 0)
    score = _ratio(tp, tp + fp).masked_fill(missed, 0.0)
    if empty_score is None:
        return score
    both_empty = ((tp + fn) == 0) & ((tp + fp) == 0)
    return score.masked_fill(both_empty, empty_score)


def specificity(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, empty_score: float | None = None):
    """Specificity = tn / (tn + fp) per image; NaN only when the image has no negative pixel.
    Empty truth is well defined here, so ``empty_score`` is accepted but has no effect."""
    return _ratio(tn, tn + fp)


def scores_from_counts(
    tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, empty_score: float | None = None
) -> dict[str, Tensor]:
    """All five scores of `SCORES` per image, under the empty-mask policy."""
    fns = {"dice": dice, "iou": iou, "sensitivity": sensitivity}
    fns.update(precision=precision, specificity=specificity)
    return {name: fn_(tp, fp, fn, tn, empty_score) for name, fn_ in fns.items()}


def mae(probs: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image, mean(|p - y|). Returns (B,).

    Report 001 calls mean(sqrt((p - y) ** 2)) "RMSE", but sqrt(d ** 2) = |d|, so that formula
    is this MAE. The true RMSE (`rmse`) takes the root after the mean and is >= MAE.
    """
    return (probs.float() - target.float()).abs().mean((1, 2, 3))


def rmse(probs: Tensor, target: Tensor) -> Tensor:
    """Root mean squared error per image, sqrt(mean((p - y) ** 2)). Returns (B,)."""
    return (probs.float() - target.float()).square().mean((1, 2, 3)).sqrt()


def nanmean(values: Tensor | Iterable[float]) -> tuple[float, int, int]:
    """Mean of the non-NaN values. Returns ``(mean, n_scored, n_excluded)``; the mean is NaN
    when nothing was scored."""
    v = torch.as_tensor(values if isinstance(values, Tensor) else list(values))
    v = v.detach().double().flatten().cpu()
    ok = ~torch.isnan(v)
    n = int(ok.sum())
    return (float(v[ok].mean()) if n else math.nan), n, int(v.numel()) - n


def _per_image(values: str | Sequence[str | None] | None, b: int, name: str) -> list:
    if values is None or isinstance(values, str):
        return [values] * b
    values = list(values)
    if len(values) != b:
        raise ValueError(f"{name} must be one value or one per image ({b}), got {len(values)}")
    return values


class MetricAccumulator:
    """Collect per-image confusion counts and errors over batches; summarise at the end.

    Example::

        acc = MetricAccumulator()
        for batch in loader:
            acc.update(model(batch.x), batch.y, classes=[...], names=[...])
        acc.compute()["dice"]                      # per-image mean over scored images
        acc.compute(classes=["COVID-19"])          # the same, COVID-19 images only

    Tensors stay on the device they arrive on; they are moved to the CPU once, in `compute`.

    Args:
        threshold: a pixel is predicted positive when its probability is >= threshold.
        empty_score: None excludes empty-truth images from Dice/IoU/sensitivity means (the
            default policy); a float scores them (see the module docstring).
    """

    def __init__(self, threshold: float = 0.5, empty_score: float | None = None) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if empty_score is not None and not 0 <= empty_score <= 1:
            raise ValueError(f"empty_score must be None or in [0, 1], got {empty_score!r}")
        self.threshold, self.empty_score = threshold, empty_score
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._counts: list[Tensor] = []  # per batch (B, 4) int64: tp, fp, fn, tn
        self._errors: list[Tensor] = []  # per batch (B, 2) float: mae, mse
        self._classes: list[str | None] = []
        self._names: list[str | None] = []
        self._table: dict[str, Tensor] | None = None

    def __len__(self) -> int:
        return len(self._classes)

    @torch.no_grad()
    def update(
        self,
        output: Tensor | Sequence[Tensor],
        target: Tensor,
        classes: str | Sequence[str | None] | None = None,
        names: str | Sequence[str | None] | None = None,
        from_logits: bool = True,
    ) -> None:
        """Add one batch.

        Args:
            output: logits as accepted by `probabilities`, or (B, 1, H, W) probabilities
                when ``from_logits=False``.
            target: (B, 1, H, W) binary mask.
            classes, names: one string per image (or one for the whole batch).
        """
        if from_logits:
            probs = probabilities(output)
        else:
            probs = output
            if not (isinstance(probs, Tensor) and probs.is_floating_point() and probs.ndim == 4):
                raise ValueError(f"probabilities must be float (B, 1, H, W), got {_shape(probs)}")
            if probs.shape[1] != 1 or probs.min() < 0 or probs.max() > 1:
                raise ValueError(
                    f"probabilities must have 1 channel and values in [0, 1], got shape "
                    f"{tuple(probs.shape)} (pass logits with from_logits=True)"
                )
        truth = _binary(target, "target", like=probs)
        pred = probs >= self.threshold
        b = probs.shape[0]
        cls, nm = _per_image(classes, b, "classes"), _per_image(names, b, "names")
        self._counts.append(torch.stack(confusion_counts(pred, truth), 1))
        err = probs.float() - truth.float()
        self._errors.append(
            torch.stack([err.abs().mean((1, 2, 3)), err.square().mean((1, 2, 3))], 1)
        )
        self._classes += cls
        self._names += nm
        self._table = None

    def _per_image_table(self) -> dict[str, Tensor]:
        """Per-image counts, scores and errors on the CPU (cached until the next update)."""
        if self._table is None:
            if self._counts:
                counts = torch.cat([c.cpu() for c in self._counts])
                errors = torch.cat([e.cpu() for e in self._errors]).double()
            else:
                counts, errors = torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, 2)
            bad = torch.isnan(errors).any(1).nonzero().flatten().tolist()
            if bad:  # NaN logits would otherwise count as "predicted negative" silently
                names = [self._names[i] or f"#{i}" for i in bad[:5]]
                raise ValueError(f"non-finite model output (NaN) for {len(bad)} image(s): {names}")
            tp, fp, fn, tn = counts.unbind(1)
            t = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
            t.update(scores_from_counts(tp, fp, fn, tn, self.empty_score))
            t.update(mae=errors[:, 0], mse=errors[:, 1], rmse=errors[:, 1].sqrt())
            t.update(truth_empty=(tp + fn) == 0, pred_empty=(tp + fp) == 0)
            self._table = t
        return self._table

    def _select(self, classes: str | Iterable[str] | None) -> Tensor:
        if classes is None:
            return torch.ones(len(self), dtype=torch.bool)
        wanted = {classes} if isinstance(classes, str) else set(classes)
        return torch.tensor([c in wanted for c in self._classes], dtype=torch.bool)

    def _summary(self, keep: Tensor) -> dict:
        t = {k: v[keep] for k, v in self._per_image_table().items()}
        out: dict = {"n_images": int(keep.sum())}
        for name in SCORES:
            out[name], n_scored, n_excluded = nanmean(t[name])
            if name == "dice":  # Dice, IoU and sensitivity share the empty-truth rule
                out["n_scored"], out["n_excluded"] = n_scored, n_excluded
            elif name in ("precision", "specificity"):
                out[f"n_scored_{name}"] = n_scored
        out["mae"], out["rmse"] = nanmean(t["mae"])[0], nanmean(t["rmse"])[0]
        tp, fp, fn, tn = (t[k].sum().reshape(1) for k in ("tp", "fp", "fn", "tn"))
        pooled = {k: float(v) for k, v in scores_from_counts(tp, fp, fn, tn).items()}
        # pixel-weighted errors: the error of all pixels pooled, whatever the image sizes
        n_pix = (t["tp"] + t["fp"] + t["fn"] + t["tn"]).double()
        pooled["mae"] = float((t["mae"] * n_pix).sum() / n_pix.sum())
        pooled["rmse"] = math.sqrt(float((t["mse"] * n_pix).sum() / n_pix.sum()))
        pooled.update(tp=int(tp), fp=int(fp), fn=int(fn), tn=int(tn))
        out["pooled"] = pooled
        n_empty = int(t["truth_empty"].sum())
        n_fp = int((t["truth_empty"] & ~t["pred_empty"]).sum())
        out["n_empty_truth"], out["n_fp_images"] = n_empty, n_fp
        out["fp_image_rate"] = n_fp / n_empty if n_empty else math.nan
        return out

    def compute(self, classes: str | Iterable[str] | None = None) -> dict:
        """Summarise the images seen (optionally only those of ``classes``).

        Returns:
            A dict: ``n_images``; per-image NaN-aware means ``dice``, ``iou``,
            ``sensitivity``, ``precision``, ``specificity``, ``mae``, ``rmse``; ``n_scored``
            / ``n_excluded`` (images scored / excluded for Dice, IoU and sensitivity),
            ``n_scored_precision``, ``n_scored_specificity``; ``pooled`` (scores from summed
            counts, pixel-weighted mae/rmse, and the counts); ``n_empty_truth``,
            ``n_fp_images``, ``fp_image_rate`` (empty-truth images with any predicted pixel);
            ``per_class`` (the same summary per class present). An empty selection gives
            ``n_images = 0`` and NaN scores.
        """
        keep = self._select(classes)
        out = self._summary(keep)
        present = sorted({c for c, k in zip(self._classes, keep.tolist()) if k and c is not None})
        out["per_class"] = {c: self._summary(keep & self._select(c)) for c in present}
        return out

    def to_rows(self) -> list[dict]:
        """One dict per image, in update order: index, name, class, counts, the five scores,
        mae, rmse, truth_empty, pred_empty (Python numbers; NaN where a score is undefined)."""
        t = self._per_image_table()
        keys = ("tp", "fp", "fn", "tn", *SCORES, "mae", "rmse", "truth_empty", "pred_empty")
        cols = {k: t[k].tolist() for k in keys}
        return [
            {"index": i, "name": self._names[i], "class": self._classes[i]}
            | {k: cols[k][i] for k in keys}
            for i in range(len(self))
        ]

    @property
    def records(self) -> list[dict]:
        """Alias of `to_rows()`."""
        return self.to_rows()
