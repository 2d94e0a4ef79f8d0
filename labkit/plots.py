"""Figures for the labs: training curves, prediction overlays, threshold sweeps, worst cases.

matplotlib is imported inside each function (``import labkit`` stays light). Every function
returns the ``matplotlib.figure.Figure`` (a notebook shows it) and can also save it with
``path=``. Without a display (CI, a server) the non-interactive Agg backend is used.

Overlay colours: green = true positive (infection found), red = false positive (infection
predicted where there is none), blue = false negative (infection missed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

TP_COLOUR, FP_COLOUR, FN_COLOUR = (0.1, 0.8, 0.2), (0.9, 0.1, 0.1), (0.1, 0.4, 1.0)


def _pyplot() -> Any:
    """``matplotlib.pyplot``, switched to Agg first when there is no display."""
    import matplotlib

    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if headless and "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any, path: str | Path | None) -> Any:
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def _np(x: Any) -> np.ndarray:
    """A 2-D numpy array from a tensor/array of shape (H, W), (1, H, W) or (1, 1, H, W)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"expected one image or mask of shape (H, W) or (1, H, W), got {x.shape}")
    return x


def error_overlay(image: Any, truth: Any, pred: Any, alpha: float = 0.5) -> np.ndarray:
    """RGB array (H, W, 3) in [0, 1]: the grey image with TP/FP/FN pixels coloured.

    Args:
        image: grey image, uint8 0-255 or float in [0, 1].
        truth, pred: binary masks (bool, {0, 1}); ``pred`` may be thresholded probabilities.
        alpha: colour opacity.
    """
    img = _np(image).astype(np.float32)
    img = img / 255.0 if img.max() > 1.0 else img
    t, p = _np(truth) > 0.5, _np(pred) > 0.5
    if not (img.shape == t.shape == p.shape):
        raise ValueError(f"image {img.shape}, truth {t.shape} and pred {p.shape} must match")
    rgb = np.repeat(img[..., None], 3, axis=2)
    for mask, colour in ((t & p, TP_COLOUR), (~t & p, FP_COLOUR), (t & ~p, FN_COLOUR)):
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(colour)
    return np.clip(rgb, 0.0, 1.0)


def plot_history(history: Any, path: str | Path | None = None) -> Any:
    """Loss, and Dice/IoU (train and validation) per epoch.

    Args:
        history: a ``labkit.train.History`` or its ``to_dict()``.
        path: save the figure there too.
    """
    h = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = h["epoch"]
    ax_loss.plot(epochs, h["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, h["val_loss"], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    # train_dice / train_iou (from the training batches) exist in histories since issue 15
    for key in ("train_dice", "train_iou", "val_dice", "val_iou"):
        if key not in h or not any(v == v for v in h[key] if v is not None):  # missing/all NaN
            continue
        vals = [np.nan if v is None else v for v in h[key]]
        style = "o--" if key.startswith("train") else "o-"
        ax_score.plot(
            epochs, vals, style, label=key.replace("val_", "validation ").replace("_", " ")
        )
    if h.get("best_epoch"):
        ax_score.axvline(
            h["best_epoch"], color="grey", ls="--", label=f"best (epoch {h['best_epoch']})"
        )
    ax_score.set(xlabel="epoch", ylabel="score", title="scores", ylim=(0, 1))
    ax_score.legend()
    for ax in (ax_loss, ax_score):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(fig, path)


def show_prediction(
    image: Any, truth: Any, prob: Any, threshold: float = 0.5, title: str | None = None,
    path: str | Path | None = None,
) -> Any:  # fmt: skip
    """Three panels: the image, the ground truth, and the prediction coloured TP/FP/FN.

    Args:
        image: grey image (H, W) or (1, H, W).
        truth: true mask.
        prob: predicted probability (or a binary prediction).
        threshold: probability threshold.
    """
    pred = _np(prob) >= threshold
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    _panels(axes, image, truth, pred)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _panels(axes: Any, image: Any, truth: Any, pred: Any) -> None:
    img = _np(image)
    axes[0].imshow(img, cmap="gray")
    axes[0].set_title("image")
    axes[1].imshow(error_overlay(img, truth, _np(truth)))
    axes[1].set_title("ground truth")
    axes[2].imshow(error_overlay(img, truth, pred))
    axes[2].set_title("prediction: TP green, FP red, FN blue", fontsize=9)
    for ax in axes:
        ax.axis("off")


def plot_threshold_sweep(sweep: dict[str, list[float]], path: str | Path | None = None) -> Any:
    """Dice and IoU against the threshold (from ``labkit.evaluation.threshold_sweep``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for key in ("dice", "iou"):
        ax.plot(sweep["threshold"], sweep[key], "o-", label=key)
    best = int(np.nanargmax(sweep["dice"])) if not np.all(np.isnan(sweep["dice"])) else None
    if best is not None:
        ax.axvline(
            sweep["threshold"][best],
            color="grey",
            ls="--",
            label=f"best Dice at {sweep['threshold'][best]:.2f}",
        )
    ax.set(xlabel="threshold", ylabel="per-image mean score", ylim=(0, 1), title="threshold sweep")
    ax.legend()
    return _finish(fig, path)


def plot_worst_cases(
    result: Any, k: int = 4, by: str = "dice", path: str | Path | None = None
) -> Any:
    """The ``k`` images with the lowest ``by`` score, one row each (image / truth / prediction).

    Args:
        result: an ``EvalResult`` from ``evaluate(..., keep_predictions=True)``.
    """
    if result.probabilities is None or result.data is None:
        raise ValueError("plot_worst_cases needs evaluate(..., keep_predictions=True)")
    rows = result.worst(k, by=by)
    if not rows:
        raise ValueError(f"no image has a defined {by!r} score (all true masks empty?)")
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        i = row["index"]
        pred = result.probabilities[i].float() >= result.threshold
        _panels(ax_row, result.data.images[i], result.targets[i], pred)
        ax_row[0].set_title(f"{row['name']} ({row['class']})\n{by} {row[by]:.3f}", fontsize=9)
    return _finish(fig, path)
