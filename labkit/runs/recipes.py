"""Recipes: one training run's settings in a run profile, and every departure from the report.

``Profile.recipe`` (``labkit.runs.profiles``) builds a :class:`Recipe` from a report's run
(``labkit.runs.REPORT_SETTINGS``): ``full`` keeps it, ``practical`` applies the bound lab's
departures (each with its reason), ``smoke`` departs as :class:`CLITraining` says. Notebooks
print the recipe; ``labkit train`` prints it and writes it to ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The warning's fixed words: `labkit course run` finds them in a notebook's output.
SAFETY_STOP = "STOPPED BY THE SAFETY LIMIT"


@dataclass(frozen=True)
class CLITraining:
    """How a ``smoke`` run departs from the report (phantom data, 64 px, 2 CPU cores).

    * ``epochs`` / ``all_train_images``: 2 epochs of 48 images are 6 Adam steps; 10 epochs
      of all 153 phantom Train images are about 100. Val and Test keep ``max_images``.
    * ``base_width``: 16 channels in the first level instead of 64 (labkit's assumption: the syllabus gives no width): 16x fewer
      multiply-adds per pixel (0.48M parameters instead of 7.7M). Pretrained encoders keep
      their width.
    * ``min_lr``: reports 001, 003 and 004 train at lr 1e-4 (002 at 1e-3; the syllabus gives
      none for 000), with runs of thousands of steps; 3e-3 moves the weights in ~100.
    * ``dice_term``: infection is 2.5 % of the phantom's Train pixels at 64 px (4.9 % on its
      COVID-19 images; ``benchmarks/caps_only.py``, RESULTS.md 3.1) and plain BCE first learns
      "background everywhere" (a known failure on rare foreground; not measured here); report
      004's 0.5 BCE + Dice gets a gradient from the rare infected pixels at once.
    * ``scheduler``: ``"cosine"`` decays the lr to 0, so the last epochs settle; chosen on
      Val (lab 02, seeds 0-2: last-epoch validation Dice 0.677 / 0.666 / 0.692 with it,
      0.641 / 0.545 / 0.543 with a constant lr; benchmarks/RESULTS.md 3.4, session 6, with
      the code of that day).
    * ``bn_momentum`` (labs 04, 05): smp's EfficientNet encoders keep TensorFlow's batch-norm
      momentum (0.01 in PyTorch's terms), so after lab 04's ~100 smoke steps from a random
      start 37 % of the running statistics (lab 05's infection models take ~280 steps, 6 %; its stage 1 84 steps, 43 %) that eval mode uses is still the initial value
      and the rest lags behind the network. Measured on Val (lab 04's B0, seeds 0-2):
      last-epoch train Dice 0.68 / 0.58 / 0.71, validation Dice in eval mode 0.07 / 0.15 /
      0.25, and 0.70 / 0.53 / 0.67 with the same weights once the statistics were
      re-estimated (benchmarks/RESULTS.md 3.4, session 6, a script not committed). 0.1 is PyTorch's default (ResNet34's),
      chosen on Val (session 9, RESULTS.md 3.1): lab 04's two encoders 0.668 with 0.1 against
      0.129 with 0.01; lab 05's two infection models 0.645
      against 0.502, below the 0.513 of a model that predicts nothing.

    Args:
        epochs: epochs for every model (instead of ``min(report, max_epochs)``).
        all_train_images: train on the whole Train split (instead of ``max_images``).
        base_width: first-level channels of the from-scratch U-Nets (labkit assumes 64 for the reports).
        min_lr: learning-rate floor: ``max(report, min_lr)``.
        dice_term: train ``bce_dice`` (0.5 BCE + Dice) where the report trains ``bce``.
        scheduler: ``TrainConfig.scheduler`` (``None``: a constant lr, labkit's assumption; the syllabus gives no schedule).
        batch_size: images per batch; ``None`` keeps the report's (capped by the profile).
        bn_momentum: batch-norm momentum for models with a pretrained encoder (the recipe's
            ``bn_momentum``), or ``None`` to keep the encoder's own.
    """

    epochs: int
    all_train_images: bool
    base_width: int
    min_lr: float
    dice_term: bool
    scheduler: str | None = None
    batch_size: int | None = None
    bn_momentum: float | None = None

    def lr(self, report: float) -> float:
        """Learning rate to use where the report used ``report``."""
        return max(report, self.min_lr)

    def loss(self, report: str) -> str:
        """Loss name to use where the report used ``report``."""
        return "bce_dice" if self.dice_term and report == "bce" else report


def stop_warning(history: Any, limit_min: float | None = None) -> str:
    """The warning for a run a safety limit cut, or ``""`` for any other run."""
    if not was_cut(history):
        return ""
    by = getattr(history, "stopped_by", "") or (
        f"the safety limit ({limit_min:g} min)" if limit_min else "the safety limit"
    )
    planned = getattr(history, "epochs_planned", None)
    return (
        f"WARNING: {SAFETY_STOP} after {len(history)} epoch(s)"
        + (f" of {planned}" if planned else "")
        + f" ({by}): this model trained less than the lab assumes, so its scores are not the "
        "ones the text discusses, and comparing it with models that trained fully is unfair "
        "(a very slow or overloaded machine; run again, or raise time_budget_min)"
    )


def was_cut(history: Any) -> bool:
    """Did a safety limit cut this run (``fit``'s ``History`` or ``train_ct``'s)?"""
    return getattr(history, "stopped_reason", None) == "time_budget"


def cut_text(history: Any) -> str:
    """``"CUT at 6 of 10 epochs"`` for a cut run, ``""`` otherwise: for a table's row."""
    if not was_cut(history):
        return ""
    planned = getattr(history, "epochs_planned", None)
    return f"CUT at {len(history)}" + (f" of {planned}" if planned else "") + " epochs"


def cut_note(histories: dict[str, Any]) -> str:
    """The line under a results table when a safety limit cut any of its rows, else ``""``.

    Args:
        histories: the table's rows by name, each with the history of its training.
    """
    cut = {name: cut_text(h) for name, h in histories.items() if was_cut(h)}
    if not cut:
        return ""
    rows = "; ".join(f"{name}: {text}" for name, text in cut.items())
    return (
        f"[CUT] a safety limit stopped training early ({rows}): these rows trained less than "
        "the others, so this table does not compare like with like; run the lab again on a "
        "less busy machine"
    )


@dataclass(frozen=True)
class Recipe:
    """One training run's settings in a profile, and how (and why) they depart from the report.

    Made by :meth:`Profile.recipe`; a notebook prints it (``print(R)``) so that a student
    sees every departure and its reason.

    Attributes:
        epochs, lr, loss, batch_size: as trained (``batch_size`` ``None``: caller's choice).
        base_width: first-level channels of a from-scratch U-Net, or ``None``.
        size: image side in pixels.
        train_images: Train images to load (``None`` = all of them).
        time_budget_min: the safety limit in minutes (``None``: none), far above the
            expected time; ``warn_if_stopped`` says when it stopped a run.
        scheduler: ``TrainConfig.scheduler`` (``None``: a constant lr; the syllabus gives none).
        bn_momentum: set every batch norm's momentum to this before training
            (``labkit.models.set_batch_norm_momentum``), or ``None``: keep the model's.
        profile: the profile's name.
        report: the ``labkit.runs.REPORT_SETTINGS`` key, or ``None``.
        departures: why each setting differs from the report, keyed by setting; empty in
            ``full``.
    """

    epochs: int
    lr: float
    loss: str
    base_width: int | None
    batch_size: int | None
    train_images: int | None
    time_budget_min: float | None
    scheduler: str | None
    profile: str
    size: int | None = None
    bn_momentum: float | None = None
    report: str | None = None
    departures: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.departures:
            from labkit.runs.reports import report_settings  # reports imports nothing of ours

            assumed = report_settings(self.report).assumed if self.report else {}
            return f"{self.profile} profile: the report's training settings as the syllabus " + (
                "gives them"
                if not assumed
                else "gives them; labkit's assumptions where it "
                "gives none:\n  - " + "\n  - ".join(f"{k}: {v}" for k, v in assumed.items())
            )
        return (
            f"{self.profile} profile: this run departs from the report (labkit.runs.CLITraining "
            "says why; the full profile keeps the report's settings):\n  - "
            + "\n  - ".join(self.departures.values())
        )

    def warn_if_stopped(self, history: Any) -> str:
        """Print (and return) a warning when the safety limit stopped ``history``'s run."""
        text = stop_warning(history, self.time_budget_min)
        if text:
            print(text)
        return text
