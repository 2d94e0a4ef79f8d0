"""Recipes: one training run's settings in a run profile, and every departure from the report.

``Profile.recipe`` (``labkit.profiles``) builds a :class:`Recipe` from a report's run
(``labkit.reports.REPORT_SETTINGS``): ``full`` keeps it, ``practical`` applies the bound lab's
departures (each with its reason), ``smoke`` departs as :class:`CLITraining` says. Notebooks
print the recipe; ``labkit train`` prints it and writes it to ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from labkit.reports import report_settings

# The warning's fixed words: `labkit course run` finds them in a notebook's output.
SAFETY_STOP = "STOPPED BY THE SAFETY LIMIT"


@dataclass(frozen=True)
class CLITraining:
    """How a ``smoke`` run departs from the report (phantom data, 64 px, 2 CPU cores).

    * ``epochs`` / ``all_train_images``: 2 epochs of 48 images are 6 Adam steps; 10 epochs
      of all 153 phantom Train images are about 100. Val and Test keep ``max_images``.
    * ``base_width``: 16 channels in the first level instead of the reports' 64: 16x fewer
      multiply-adds per pixel (0.48M parameters instead of 7.7M). Pretrained encoders keep
      their width.
    * ``min_lr``: the reports' lr 1e-4 is tuned for thousands of steps; 3e-3 moves the
      weights in ~100.
    * ``dice_term``: infection is ~2.5 % of the pixels and plain BCE first learns
      "background everywhere" (measured: all background for 6-8 epochs at lr 3e-3); report
      004's 0.5 BCE + Dice gets a gradient from the rare infected pixels at once.
    * ``scheduler``: ``"cosine"`` decays the lr to 0, so the last epochs settle; chosen on
      Val (lab 02, seeds 0-2: last-epoch validation Dice 0.677 / 0.666 / 0.692 with it,
      0.641 / 0.545 / 0.543 with a constant lr; benchmarks/RESULTS.md, session 6).
    * ``bn_momentum`` (labs 04, 05): smp's EfficientNet encoders keep TensorFlow's batch-norm
      momentum (0.01 in PyTorch's terms), so after a smoke run's ~100 steps from a random
      start 37 % of the running statistics that eval mode uses is still the initial value
      and the rest lags behind the network. Measured on Val (lab 04's B0, seeds 0-2):
      last-epoch train Dice 0.68 / 0.58 / 0.71, validation Dice in eval mode 0.07 / 0.15 /
      0.25, and 0.70 / 0.53 / 0.67 with the same weights once the statistics were
      re-estimated (benchmarks/RESULTS.md, session 6). 0.1 is PyTorch's default (ResNet34's).

    Args:
        epochs: epochs for every model (instead of ``min(report, max_epochs)``).
        all_train_images: train on the whole Train split (instead of ``max_images``).
        base_width: first-level channels of the from-scratch U-Nets (reports: 64).
        min_lr: learning-rate floor: ``max(report, min_lr)``.
        dice_term: train ``bce_dice`` (0.5 BCE + Dice) where the report trains ``bce``.
        scheduler: ``TrainConfig.scheduler`` (the reports use a constant lr: ``None``).
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
        scheduler: ``TrainConfig.scheduler`` (``None``: a constant lr, as in the reports).
        bn_momentum: set every batch norm's momentum to this before training
            (``labkit.models.set_batch_norm_momentum``), or ``None``: keep the model's.
        profile: the profile's name.
        report: the ``labkit.reports.REPORT_SETTINGS`` key, or ``None``.
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
            return f"{self.profile} profile: the report's training settings"
        return (
            f"{self.profile} profile: this run departs from the report (labkit.recipes.CLITraining "
            "says why; the full profile keeps the report's settings):\n  - "
            + "\n  - ".join(self.departures.values())
        )

    def warn_if_stopped(self, history: Any) -> str:
        """Print (and return) a warning when the safety limit stopped ``history``'s run."""
        text = stop_warning(history, self.time_budget_min)
        if text:
            print(text)
        return text


def build_recipe(
    profile: Any,
    report: str | None = None,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    loss: str | None = None,
    base_width: int | None = None,
    batch_size: int | None = None,
    smoke: dict[str, Any] | None = None,
) -> Recipe:
    """``Profile.recipe``'s work (see there): the settings, then each departure and its reason."""
    s = report_settings(report) if report is not None else None
    given = dict(epochs=epochs, lr=lr, loss=loss, base_width=base_width, batch_size=batch_size)
    given = {k: (getattr(s, k) if v is None and s else v) for k, v in given.items()}
    missing = [k for k in ("epochs", "lr", "loss") if given[k] is None]
    if missing:
        raise ValueError(f"recipe: give report= or {', '.join(missing)}")
    epochs, lr, loss, base_width = (given[k] for k in ("epochs", "lr", "loss", "base_width"))
    size = profile.size(s.size) if s else None
    batch = None if given["batch_size"] is None else profile.batch_size(given["batch_size"])
    capped, images = profile.epochs(epochs), profile.images()
    out: dict[str, Any] = dict(
        epochs=capped, lr=lr, loss=loss, base_width=base_width, batch_size=batch,
        train_images=images, time_budget_min=profile.time_budget_min, scheduler=None,
        size=size,
    )  # fmt: skip
    why: dict[str, str] = {}
    assumed = s.assumed if s else {}

    def depart(key: str, value: Any, reason: str) -> None:  # one setting, one reason
        out[key], why[key] = value, reason

    def theirs(key: str, value: Any) -> str:  # "the report's 64", or whose value it is
        text = f"{value:g}" if isinstance(value, float) else f"{value}"
        return f"{text} ({assumed[key]})" if key in assumed else f"the report's {text}"

    if profile.cli_train is None:  # full (no changes) or practical (the lab's, with reasons)
        for key, (value, reason) in profile.lab_changes.get(profile.lab or "", {}).items():
            target = {"images": "train_images", "lung_images": None}.get(key, key)
            if target == "base_width" and base_width is None:
                continue  # a pretrained encoder has no width to change
            if target:
                depart(target, value, reason)
        return Recipe(**out, profile=profile.name, report=report, departures=why)
    cli = replace(profile.cli_train, **_checked(profile.lab_changes.get(profile.lab or "", {})))
    cli = replace(cli, **_checked(smoke or {}))
    if min(cli.epochs, epochs) != capped:
        n = min(cli.epochs, epochs)
        report_part = "as the report" if n == epochs else f"instead of the report's {epochs}"
        depart(
            "epochs",
            n,
            f"{n} epochs ({report_part}), not the smoke profile's cap of {capped}: "
            f"{capped} epochs of a few batches are too few steps to learn",
        )
    if cli.all_train_images and images is not None:
        depart(
            "train_images",
            None,
            f"every Train image instead of {images} (Val and Test keep {images})",
        )
    if base_width is not None and cli.base_width != base_width:
        depart(
            "base_width",
            cli.base_width,
            f"base width {cli.base_width} instead of {theirs('base_width', base_width)}: "
            f"{(base_width / cli.base_width) ** 2:g}x fewer multiply-adds per pixel",
        )
    if batch is not None and cli.batch_size is not None and cli.batch_size != batch:
        depart(
            "batch_size",
            cli.batch_size,
            f"batch {cli.batch_size} instead of {batch}"
            f"{'' if batch == given['batch_size'] else ' (the profile caps ' + str(given['batch_size']) + ')'}"
            ": "
            f"{batch / cli.batch_size:g}x as many (smaller) Adam steps for the same "
            "work",
        )
    if cli.lr(lr) != lr:
        depart("lr", cli.lr(lr), f"lr {cli.lr(lr):g} instead of {theirs('lr', lr)}: few steps")
    if cli.scheduler is not None:
        depart(
            "scheduler",
            cli.scheduler,
            f"{cli.scheduler} lr decay instead of the "
            "report's constant lr: the last epochs settle instead of jumping about at "
            "a large lr",
        )
    if cli.bn_momentum is not None and base_width is None:  # a pretrained encoder's
        depart(
            "bn_momentum",
            cli.bn_momentum,
            f"batch-norm momentum {cli.bn_momentum:g} (PyTorch's default, ResNet34's) "
            "instead of EfficientNet's 0.01: with 0.01 the running statistics that eval mode "
            "uses lag far behind the network in a run this short (lab 04 says what was "
            "measured)",
        )
    if cli.loss(loss) != loss:
        depart(
            "loss",
            cli.loss(loss),
            f"loss {cli.loss(loss)} (0.5 BCE + Dice) instead of "
            f"the report's {loss}: plain BCE first predicts background everywhere",
        )
    if profile.time_budget_min is not None:
        why["time_budget_min"] = (
            f"a fixed amount of work, not a time budget: {profile.time_budget_min:g} min is "
            "only a safety limit, and a warning says so if it stops the run"
        )
    return Recipe(**out, profile=profile.name, report=report, departures=why)


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(CLITraining)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"smoke: unknown setting(s) {unknown}; expected some of {sorted(known)}")
    return changes
