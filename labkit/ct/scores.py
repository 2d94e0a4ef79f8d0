"""Per-subject scores (labkit's label: Table 4): one Dice, IoU, sensitivity and precision per
CT volume, counted over all its voxels, then the mean over subjects.

Empty-mask policy (labkit's, ``labkit.metrics``): a subject with no infection voxel scores
NaN for Dice, IoU and sensitivity (labkit's convention: its Dice/IoU would be 0 for any
predicted voxel, 0/0 for none) and is left out of the means; an empty prediction
has precision 0 when the subject has infection (NaN when it has none). Every subject of the
Kaggle set has infection.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from labkit.ct.dataset import CTVolume
from labkit.ct.infer import predict_volume
from labkit.metrics import dice, iou, precision, sensitivity

TABLE4_SCORES = ("dice", "iou", "sensitivity", "precision")


def volume_scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Dice, IoU, sensitivity and precision of one binary prediction over a whole volume.

    Args:
        pred: binary ``(X, Y, Z)`` (bool or {0, 1}).
        truth: binary ground truth, same shape.

    Returns:
        ``{"dice", "iou", "sensitivity", "precision"}`` as floats in [0, 1] (NaN per the
        empty-mask policy above).

    Raises:
        ValueError: shapes differ.
    """
    if pred.shape != truth.shape:
        raise ValueError(
            f"pred and truth must have one shape, got {tuple(pred.shape)} and {tuple(truth.shape)}"
        )
    p, t = pred.bool().reshape(1, -1), truth.bool().reshape(1, -1)
    tp, fp, fn = (p & t).sum(1), (p & ~t).sum(1), (~p & t).sum(1)
    tn = p.shape[1] - tp - fp - fn
    fns = {"dice": dice, "iou": iou, "sensitivity": sensitivity, "precision": precision}
    return {name: float(fn_(tp, fp, fn, tn)[0]) for name, fn_ in fns.items()}


def mean_scores(rows: list[dict]) -> dict[str, float]:
    """Mean of each Table 4 score over the subjects where it is defined (NaN: left out)."""
    means = {}
    for name in TABLE4_SCORES:
        values = [r[name] for r in rows if not math.isnan(r[name])]
        means[name] = sum(values) / len(values) if values else math.nan
    return means


def evaluate_ct(
    model: nn.Module,
    volumes: list[CTVolume],
    window: tuple[int, int, int],
    lung_only: bool = True,
    overlap: float = 0.5,
    threshold: float = 0.5,
    keep: bool = False,
    progress: bool = True,
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Sliding-window prediction and :func:`volume_scores` for every subject.

    Args:
        model: a 1-class 3-D model (logits).
        volumes: the subjects to score (scored on their stored size, padding cropped off).
        window: the training patch size.
        lung_only: lung-masked input, as in training.
        overlap: sliding-window overlap.
        threshold: probability at or above which a voxel is infection.
        keep: also return each subject's uint8 prediction (for the slice viewer).
        progress: a progress bar over subjects.

    Returns:
        ``(rows, predictions)``: one dict per subject (``subject``, ``shape``, the four
        scores) and ``{subject: uint8 (X, Y, Z)}`` when ``keep`` (else empty).
    """
    from tqdm.auto import tqdm

    rows, kept = [], {}
    bar = tqdm(volumes, desc="sliding window", unit="volume", disable=not progress)
    for vol in bar:
        probs = predict_volume(model, vol.inputs(lung_only), window, overlap)
        x, y, z = vol.shape
        pred = (probs >= threshold)[:x, :y, :z]
        rows.append(
            {
                "subject": vol.subject,
                "shape": vol.shape,
                **volume_scores(pred, vol.infection[:x, :y, :z]),
            }
        )
        if keep:
            kept[vol.subject] = pred.to(torch.uint8)
    bar.set_postfix_str(f"mean Dice {mean_scores(rows)['dice']:.3f}" if rows else "no volumes")
    bar.close()
    return rows, kept
