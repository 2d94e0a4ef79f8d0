"""Evaluation: ``lk.evaluate(model, data)`` -> per-image scores and aggregates by class.

Students call ``lk.evaluate(...)`` and ``lk.evaluation.threshold_sweep(...)``; notebooks
written for labkit 0.1 call ``lk.evaluate.evaluate(...)`` and ``lk.evaluate.threshold_sweep``,
which still work (the two names are attributes of the function, see the end of this file).

The headline numbers are **COVID-19-only per-image means** under labkit's empty-mask policy
(ARCHITECTURE.md, ``labkit.metrics``): an image whose true infection mask is empty is scored
NaN for Dice, IoU and sensitivity and left out of those means (the counts say how many), unless
you pass ``empty_score``. Non-COVID and Normal images have empty masks by construction, so
for them the useful question is "did the model predict infection anyway?": the
false-positive image rate. An all-image block and pooled (pixel-count) scores are reported
too, because papers rarely say which average they used.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labkit.data.cache import SegData, load_split
from labkit.data.layout import SPLITS
from labkit.data.loader import BatchLoader
from labkit.data.locate import resolve_data
from labkit.device import amp_dtype, autocast, pick_device
from labkit.metrics import SCORES, MetricAccumulator, nanmean, probabilities
from labkit.progress import batch_bar, drawn_when_closed
from labkit.runs import get_profile

COVID = "COVID-19"
HEALTHY = ("Non-COVID", "Normal")  # classes whose infection masks are empty
SCORE_KEYS = (*SCORES, "mae", "rmse")  # the columns of EvalResult.table
POLICY = (
    "per-image means; images with an empty true mask are excluded from Dice/IoU/sensitivity "
    "(n_excluded); an empty prediction of an infected image has precision 0"
)


@dataclass
class EvalResult:
    """What `evaluate` found. ``rows`` has one dict per image (in data order).

    ``covid`` is the headline block (COVID-19 images only), ``all_images`` the same over
    every image, ``per_class`` one block per class; each block holds the per-image means
    ``dice iou sensitivity precision specificity mae rmse``, counts ``n_images n_scored
    n_excluded`` and ``pooled`` scores. ``fp_image_rate`` maps Non-COVID / Normal to the
    fraction of their images with any predicted infection pixel. ``probabilities`` (float16,
    (N, 1, H, W), data order) and ``targets`` (uint8) are kept for plots and threshold sweeps.
    """

    split: str | None
    threshold: float
    empty_score: float | None
    rows: list[dict[str, Any]]
    covid: dict[str, Any]
    all_images: dict[str, Any]
    per_class: dict[str, dict[str, Any]]
    fp_image_rate: dict[str, float]
    probabilities: torch.Tensor | None = field(default=None, repr=False)
    targets: torch.Tensor | None = field(default=None, repr=False)
    data: Any = field(default=None, repr=False)

    @property
    def policy(self) -> str:
        if self.empty_score is None:
            return POLICY
        return f"per-image means; an image with an empty true mask scores {self.empty_score} if the prediction is empty too, else 0"

    def to_dict(self, rows: bool = False) -> dict[str, Any]:
        """JSON-ready summary (NaN -> None): the COVID-only headline scores at top level."""
        split = self.split.lower() if self.split else None  # as on the command line
        out: dict[str, Any] = {"split": split, "threshold": self.threshold}
        out["empty_score"], out["policy"] = self.empty_score, self.policy
        out["classes_in_headline"] = [COVID]
        out.update({k: v for k, v in self.covid.items() if k != "per_class"})
        out["all_images"] = {k: v for k, v in self.all_images.items() if k != "per_class"}
        out["per_class"] = self.per_class
        out["false_positive_image_rate"] = self.fp_image_rate
        if rows:
            out["rows"] = self.rows
        return jsonable(out)

    def worst(self, k: int = 8, by: str = "dice") -> list[dict[str, Any]]:
        """The ``k`` scored images with the lowest ``by`` score (NaN rows skipped)."""
        scored = [r for r in self.rows if not _isnan(r[by])]
        return sorted(scored, key=lambda r: r[by])[:k]

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-image rows to a CSV file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]) if self.rows else ["name"])
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def table(self) -> str:
        """A fixed-width table: one line per class, all images, and pooled COVID scores."""
        head = f"{'group':<12} {'images':>6} {'scored':>6}" + "".join(
            f" {k[:6]:>6}" for k in SCORE_KEYS
        )
        lines = [f"split {self.split}, threshold {self.threshold:g}: {self.policy}", head]

        def line(label: str, block: dict[str, Any], scores: dict[str, Any] | None = None) -> str:
            s = scores or block
            cells = "".join(f" {_fmt(s.get(k)):>6}" for k in SCORE_KEYS)
            return f"{label:<12} {block['n_images']:>6} {block.get('n_scored', ''):>6}{cells}"

        for cls, block in self.per_class.items():
            lines.append(line(cls, block))
        lines.append(line("all images", self.all_images))
        lines.append(line("COVID pooled", self.covid, self.covid["pooled"]))
        rates = ", ".join(f"{c} {_fmt(r)}" for c, r in self.fp_image_rate.items())
        lines.append(
            f"false-positive image rate (any predicted pixel on an empty mask): {rates}"
            if rates
            else "false-positive image rate: n/a (no image with an empty mask in this split)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: Any) -> str:
    return "-" if _isnan(v) else f"{v:.3f}"


def jsonable(obj: Any) -> Any:
    """Replace NaN/inf by None (strict JSON has no NaN) and tuples by lists, recursively."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _loader(
    data: Any, split: str | None, batch_size: int, device, inputs, target, lung_only, size, progress
):
    """A non-shuffled ``BatchLoader`` for ``data`` (a SegData, BatchLoader, or dataset root)."""
    if split is not None:
        by_lower = {s.lower(): s for s in SPLITS}
        if str(split).lower() not in by_lower:
            raise ValueError(f"split must be one of {SPLITS} (any case), got {split!r}")
        split = by_lower[str(split).lower()]
    if isinstance(data, BatchLoader):
        return data, data.data.split
    if isinstance(data, (str, Path)):
        root = resolve_data(data, get_profile().phantom_n)  # LABKIT_PROFILE's phantom set
        data = load_split(root, split or "Test", size=size, progress=progress)
    if not isinstance(data, SegData):
        raise ValueError(
            f"data must be a SegData, a BatchLoader or a dataset root, got {type(data).__name__}"
        )
    if split is not None and data.split != split:
        raise ValueError(
            f"split={split!r} asked for, but the data given is the {data.split!r} split"
        )
    loader = BatchLoader(
        data,
        batch_size,
        shuffle=False,
        target=target,
        inputs=inputs,
        lung_only=lung_only,
        device=device,
    )
    return loader, data.split


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    split: str | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    threshold: float = 0.5,
    empty_score: float | None = None,
    inputs: str | None = None,
    target: str = "infection",
    lung_only: bool | None = None,
    size: int | None = None,
    amp: bool = True,
    keep_predictions: bool = True,
    progress: bool = True,
) -> EvalResult:
    """Score ``model`` on every image of ``data``, per image and by class.

    Args:
        model: returns logits ``(B, 1|2, H, W)`` in eval mode.
        data: a ``SegData`` (from ``load_split``), a ``BatchLoader`` (its own inputs/target
            are used) or a dataset root / ``"phantom"`` (``split`` is then loaded at ``size``).
        split: ``"Train"``, ``"Val"`` or ``"Test"`` (any case); checked against ``data``.
        batch_size, device: how to run the model (device default: automatic).
        threshold: probability threshold for a positive pixel.
        empty_score: None (default policy: empty-truth images excluded, counted) or the
            score an empty-truth image gets for an empty prediction (0 otherwise).
        inputs: ``"grey"``, ``"rgb"``, ``"grey+lung"``, ``"rgb+lung"``; None = what the model
            was trained on (``model.labkit_checkpoint`` from ``load_model``), else ``"grey"``.
        target: ``"infection"`` or ``"lung"``.
        lung_only: mask the image to the lungs; None = as trained (default False).
        size: image size when ``data`` is a root; None = as trained, else 256.
        amp: mixed precision on GPUs (as in training).
        keep_predictions: keep probabilities and targets for plots and threshold sweeps.
        progress: show a progress bar.

    Returns:
        An `EvalResult`.
    """

    trained = (getattr(model, "labkit_checkpoint", None) or {}).get("data") or {}
    inputs = inputs or trained.get("inputs") or "grey"
    lung_only = bool(trained.get("lung_only", False)) if lung_only is None else lung_only
    size = size or trained.get("size") or 256
    dev = pick_device(device)
    loader, split = _loader(data, split, batch_size, dev, inputs, target, lung_only, size, progress)
    seg = loader.data
    was_training = model.training
    model = model.to(dev).eval()
    dtype = amp_dtype(dev, amp)
    acc = MetricAccumulator(threshold=threshold, empty_score=empty_score)
    order: list[int] = []
    probs = targets = None
    if keep_predictions:
        probs = torch.zeros(seg.images.shape, dtype=torch.float16)  # (N, 1, H, W) data order
        targets = torch.zeros(seg.images.shape, dtype=torch.uint8)
    with drawn_when_closed(batch_bar(loader, f"evaluate {split}", progress)) as bar:
        for batch in loader:
            idx = batch.index.tolist()
            with autocast(dev, dtype):
                out = model(batch.x.to(dev))  # (B, 1|2, H, W) logits
            p = probabilities(out).float()  # (B, 1, H, W) infection probability
            acc.update(
                p,
                batch.y.to(dev),
                classes=[seg.classes[i] for i in idx],
                names=[seg.names[i] for i in idx],
                from_logits=False,
            )
            order += idx
            if keep_predictions:
                probs[batch.index] = p.cpu().half()
                targets[batch.index] = batch.y.cpu().to(torch.uint8)
            bar.update()
    model.train(was_training)
    rows = acc.to_rows()
    for row, i in zip(rows, order):
        row["index"] = i
    rows.sort(key=lambda r: r["index"])
    summary = acc.compute()
    covid = acc.compute(classes=[COVID])
    fp = {c: summary["per_class"][c]["fp_image_rate"] for c in HEALTHY if c in summary["per_class"]}
    return EvalResult(
        split=split, threshold=threshold, empty_score=empty_score, rows=rows,
        covid={k: v for k, v in covid.items() if k != "per_class"},
        all_images={k: v for k, v in summary.items() if k != "per_class"},
        per_class=summary["per_class"], fp_image_rate=fp,
        probabilities=probs, targets=targets, data=seg,
    )  # fmt: skip


def threshold_sweep(
    result: EvalResult, thresholds: Any = None, classes: Any = (COVID,)
) -> dict[str, list[float]]:
    """Per-image mean Dice and IoU at each threshold, from kept probabilities, and two scores
    that see false alarms on healthy images.

    Choose a threshold on the validation split, never on the test split you report. Dice and
    IoU (over ``classes``, COVID-19 by default) cannot see false alarms on images with an
    empty true mask, so a threshold chosen by them alone may mark many healthy images as
    infected; choose by ``dice_all`` (the score of ``monitor="val_dice_all"``, lab 05) or
    look at ``fp_image_rate`` beside them.

    Returns:
        ``{"threshold", "dice", "iou", "dice_all", "fp_image_rate"}``, each a list with one
        value per threshold. ``dice_all``: the mean over **every** image, where an image with
        an empty true mask scores 1 if nothing is predicted in it and 0 otherwise (NaN for
        other images only as ``dice`` is). ``fp_image_rate``: the fraction of the images with
        an empty true mask that have any predicted pixel (NaN when there are none).
    """
    if result.probabilities is None:
        raise ValueError("threshold_sweep needs evaluate(..., keep_predictions=True)")
    thresholds = [t / 20 for t in range(1, 20)] if thresholds is None else list(thresholds)
    cls = [r["class"] for r in result.rows]
    out: dict[str, list[float]] = {
        "threshold": thresholds,
        "dice": [],
        "iou": [],
        "dice_all": [],
        "fp_image_rate": [],
    }
    for t in thresholds:
        acc = MetricAccumulator(threshold=t, empty_score=result.empty_score)
        acc.update(result.probabilities.float(), result.targets, classes=cls, from_logits=False)
        scores = acc.compute(classes=classes)
        out["dice"].append(scores["dice"])
        out["iou"].append(scores["iou"])
        everything = acc.compute()
        out["fp_image_rate"].append(everything["fp_image_rate"])
        per_image = [
            float(r["pred_empty"]) if r["truth_empty"] else r["dice"] for r in acc.to_rows()
        ]
        out["dice_all"].append(nanmean(per_image)[0] if per_image else math.nan)
    return out


# labkit 0.1 spelled these lk.evaluate.evaluate(...) and lk.evaluate.threshold_sweep(...)
# (lk.evaluate was this module); now lk.evaluate is the function, and these two attributes
# keep notebooks that students already have running.
evaluate.evaluate = evaluate  # type: ignore[attr-defined]
evaluate.threshold_sweep = threshold_sweep  # type: ignore[attr-defined]
