"""Run profiles: one place that says how big a run is.

* ``smoke`` — CPU-friendly: 64 px images, a few dozen images per split, 1–2 epochs.
  Used by CI, nbval and a student's first look. Results are not comparable to the reports.
* ``full`` — the reports' settings: their image size, all the data, their epochs.
  Meant for a GPU with the real COVID-QU-Ex data.

A notebook reads the profile in a cell tagged ``parameters`` (papermill convention), so it
can be overridden there; otherwise ``LABKIT_PROFILE`` or ``--profile`` chooses it.

Labs ask the profile for a setting *relative to the report*, e.g. ``P.epochs(100)`` is the
report's 100 epochs in ``full`` and at most ``max_epochs`` in ``smoke``.

``labkit train`` and the lab notebooks in ``smoke`` depart further from the reports
(``Profile.recipe``, from ``Profile.cli_train``, a :class:`CLITraining`): the caps alone (2
epochs of 48 images at the report's lr) give a 7.7M-parameter U-Net 6 Adam steps at lr 1e-4,
which leaves it predicting background everywhere (test Dice 0). A smoke run should show a
model that learns, so it trains a narrower U-Net (base width 16) on every Train image for 10
epochs at lr >= 3e-3 decaying to 0 (cosine), with a Dice term added to plain BCE, and stops
after the epoch that passes 1.5 minutes. On the phantom data ``labkit train --model unet``
takes about 25-35 s on 2 idle CPU cores (a busy machine may stop it after fewer epochs) and
reached a test COVID-19 Dice of 0.6-0.67 (seeds 0-2) without the cosine decay, 0.69 with it
(seed 0), against 0.26 for predicting the whole lung and 0 for the caps alone. A notebook
may change the recipe for its lab (``Profile.recipe(smoke=...)``: fewer epochs for a lab
that trains several models, no Dice term for one that compares plain losses).
Every departure is printed with its reason (``labkit train`` also writes them to
``metrics.json``, ``departures``). The ``full`` profile has no ``cli_train``: the reports'
settings, unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

ENV_VAR = "LABKIT_PROFILE"
DEFAULT_PROFILE = "smoke"


@dataclass(frozen=True)
class CLITraining:
    """How ``labkit train`` departs from the report in a profile (``smoke`` only).

    Why each one (phantom data, 64 px, 2 CPU cores; measured with the baseline U-Net):

    * ``epochs``: the notebooks' cap of 2 epochs is 6 Adam steps on 48 images, far too few
      to learn anything; 10 epochs of all 153 phantom Train images is about 100 steps.
    * ``all_train_images``: 48 images (24 with infection) is too little signal; Val and
      Test keep ``max_images``, so the scores stay comparable with the notebooks'.
    * ``base_width``: the from-scratch U-Nets (``unet``, ``resunet``, ``fvpaspp``) use 16
      channels in their first level instead of the reports' 64: 16x fewer multiply-adds
      per pixel (0.48M parameters instead of 7.7M): 10 epochs take about 20 s. Pretrained-encoder models keep
      their encoders (their width is the encoder's).
    * ``min_lr``: the reports' lr 1e-4 (1e-3 for report 002) is tuned for tens of
      thousands of steps; with ~100 steps it barely moves the weights. 3e-3 does.
    * ``dice_term``: infection is about 2.5% of the pixels, and plain BCE first learns
      "background everywhere" (measured: all-background for the first 6-8 epochs at lr
      3e-3, for all 10 at 1e-2); report 004's BCE + Dice (``bce_dice``) gets a gradient
      from the rare infected pixels from the first step. Only a plain ``bce`` is replaced.
    * ``scheduler``: ``"cosine"`` decays the lr to 0 over the run. At lr 3e-3 the validation
      Dice jumps by 0.1-0.3 from one epoch to the next; decaying it lets the last epochs
      settle, so the last epoch's weights (which labs 02 and 03 keep) are about as good as
      the best ones (measured: lab 02's U-Net 0.69 test Dice at the last epoch with it,
      0.44-0.51 without).
    * ``time_budget_min``: the pretrained-encoder models (ResNet34, EfficientNet, the
      cascade) cost 3-5x more per epoch; every model stops after the epoch that passes
      this budget, so any ``labkit train`` smoke run ends within about 2 minutes.

    Flags (``--epochs``, ``--lr``, ``--loss``, ``--time-budget``) override these too.

    Args:
        epochs: epochs for every model (instead of ``min(report, max_epochs)``).
        all_train_images: train on the whole Train split (instead of ``max_images``).
        base_width: first-level channels of the from-scratch U-Nets (reports: 64).
        min_lr: learning-rate floor: ``max(report, min_lr)``.
        dice_term: train ``bce_dice`` (0.5 BCE + Dice) where the report trains ``bce``.
        time_budget_min: minutes per run (instead of ``Profile.time_budget_min``).
        scheduler: ``TrainConfig.scheduler`` (the reports use a constant lr: ``None``).
        batch_size: images per batch (instead of the report's, capped by the profile);
            ``None`` keeps it. A smaller batch gives more Adam steps for the same work.
    """

    epochs: int
    all_train_images: bool
    base_width: int
    min_lr: float
    dice_term: bool
    time_budget_min: float
    scheduler: str | None = None
    batch_size: int | None = None

    def lr(self, report: float) -> float:
        """Learning rate to use where the report used ``report``."""
        return max(report, self.min_lr)

    def loss(self, report: str) -> str:
        """Loss name to use where the report used ``report``."""
        return "bce_dice" if self.dice_term and report == "bce" else report


@dataclass(frozen=True)
class Recipe:
    """One training run's settings in a profile, and how (and why) they depart from the report.

    Made by :meth:`Profile.recipe`, used by ``labkit train`` and by the lab notebooks, which
    print it (``print(R)``) so that a student sees every departure and its reason.

    Attributes:
        epochs: epochs to train.
        lr: learning rate.
        loss: loss name (``labkit.losses.build_loss``).
        base_width: first-level channels of a from-scratch U-Net, or ``None`` (no such model).
        batch_size: images per batch, or ``None`` (the caller did not give the report's).
        train_images: Train images to load (``None`` = all of them).
        time_budget_min: stop after the epoch that passes this many minutes, or ``None``.
        scheduler: ``TrainConfig.scheduler`` (``None``: a constant lr, as in the reports).
        profile: the profile's name.
        departures: why each setting differs from the report, keyed by the setting's name
            (``epochs``, ``train_images``, ``base_width``, ``batch_size``, ``lr``,
            ``scheduler``, ``loss``, ``time_budget_min``), in that order; empty in ``full``.
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
    departures: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.departures:
            return f"{self.profile} profile: the report's training settings"
        return (
            f"{self.profile} profile: this run departs from the report so that it learns "
            "something in a minute or two on a CPU (labkit.profiles.CLITraining says why; the "
            "full profile keeps the report's settings):\n  - "
            + "\n  - ".join(self.departures.values())
        )


@dataclass(frozen=True)
class Profile:
    """Named run settings.

    Args:
        name: profile name.
        description: one line for ``labkit info`` and notebooks.
        image_size: fixed image side in pixels, or ``None`` for the report's size.
        max_epochs: upper bound on epochs, or ``None`` for the report's epochs.
        max_images: images kept per split (stratified by class), or ``None`` for all.
        max_batch_size: upper bound on batch size, or ``None`` for the report's.
        phantom_n: images per subset when the phantom dataset is generated.
        time_budget_min: per-training time budget in minutes, or ``None``.
        cli_train: how ``labkit train`` departs from the report beyond the caps above
            (:class:`CLITraining`), or ``None`` for the report's settings.
    """

    name: str
    description: str
    image_size: int | None
    max_epochs: int | None
    max_images: int | None
    max_batch_size: int | None
    phantom_n: int
    time_budget_min: float | None
    cli_train: CLITraining | None = None

    def size(self, report: int = 256) -> int:
        """Image side to use where the report used ``report`` pixels."""
        return self.image_size if self.image_size is not None else report

    def epochs(self, report: int) -> int:
        """Epochs to use where the report trained for ``report`` epochs."""
        return report if self.max_epochs is None else min(report, self.max_epochs)

    def batch_size(self, report: int) -> int:
        """Batch size to use where the report used ``report``."""
        return report if self.max_batch_size is None else min(report, self.max_batch_size)

    def images(self, report: int | None = None) -> int | None:
        """Images per split to load (``None`` = all of them)."""
        if self.max_images is None:
            return report
        return self.max_images if report is None else min(report, self.max_images)

    def recipe(
        self,
        *,
        epochs: int,
        lr: float,
        loss: str,
        base_width: int | None = None,
        batch_size: int | None = None,
        smoke: dict[str, Any] | None = None,
    ) -> Recipe:
        """Training settings for a run whose report used these, with every departure.

        Without ``cli_train`` (the ``full`` profile) these are the report's settings (epochs
        capped by ``max_epochs``, if any) and there are no departures. With it (``smoke``)
        the run departs as :class:`CLITraining` says, and each departure is listed with its
        reason.

        Args:
            epochs: the report's epochs.
            lr: the report's learning rate.
            loss: the report's loss name.
            base_width: the report's first-level width of a from-scratch U-Net, or ``None``
                for a model without one (a pretrained encoder).
            batch_size: the report's batch size (capped by the profile), or ``None`` when
                the caller chooses its own batch.
            smoke: changes to ``cli_train`` for this run, e.g. ``{"epochs": 5}`` for a lab
                that trains six models, ``{"dice_term": False}`` for a lab that compares
                plain losses, ``{"batch_size": 8}`` for more steps. Ignored without
                ``cli_train``.

        Returns:
            a :class:`Recipe`; ``print`` it to show the departures.
        """
        capped, images, budget = self.epochs(epochs), self.images(), self.time_budget_min
        batch = None if batch_size is None else self.batch_size(batch_size)
        out: dict[str, Any] = dict(
            epochs=capped, lr=lr, loss=loss, base_width=base_width, batch_size=batch,
            train_images=images, time_budget_min=budget, scheduler=None,
        )  # fmt: skip
        cli = self.cli_train
        if cli is None:
            return Recipe(**out, profile=self.name)
        if smoke:
            known = {f.name for f in fields(CLITraining)}
            unknown = sorted(set(smoke) - known)
            if unknown:
                raise ValueError(
                    f"smoke: unknown setting(s) {unknown}; expected some of {sorted(known)}"
                )
            cli = replace(cli, **smoke)
        why: dict[str, str] = {}

        def depart(key: str, value: Any, reason: str) -> None:  # one setting, one reason
            out[key], why[key] = value, reason

        if min(cli.epochs, epochs) != capped:
            depart(
                "epochs",
                min(cli.epochs, epochs),
                f"{min(cli.epochs, epochs)} epochs instead of {capped} (report: {epochs}): "
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
                f"base width {cli.base_width} instead of the report's {base_width}: "
                f"{(base_width / cli.base_width) ** 2:g}x fewer multiply-adds per pixel",
            )
        if batch is not None and cli.batch_size is not None and cli.batch_size != batch:
            depart(
                "batch_size",
                cli.batch_size,
                f"batch {cli.batch_size} instead of {batch}: {batch / cli.batch_size:g}x as "
                "many (smaller) Adam steps for the same work",
            )
        if cli.lr(lr) != lr:
            depart("lr", cli.lr(lr), f"lr {cli.lr(lr):g} instead of the report's {lr:g}: few steps")
        if cli.scheduler is not None:
            depart(
                "scheduler",
                cli.scheduler,
                f"{cli.scheduler} lr decay instead of the report's constant lr: the last "
                "epochs settle instead of jumping about at a large lr",
            )
        if cli.loss(loss) != loss:
            depart(
                "loss",
                cli.loss(loss),
                f"loss {cli.loss(loss)} (0.5 BCE + Dice) instead of the report's {loss}: plain "
                "BCE first predicts background everywhere",
            )
        if cli.time_budget_min != budget:
            depart(
                "time_budget_min",
                cli.time_budget_min,
                f"stops after the epoch that passes {cli.time_budget_min:g} min "
                f"(instead of {budget:g})",
            )
        return Recipe(**out, profile=self.name, departures=why)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CPU-friendly first look and CI: 64 px, a few dozen images, 1-2 epochs",
        image_size=64,
        max_epochs=2,
        max_images=48,
        max_batch_size=16,
        phantom_n=240,
        time_budget_min=5.0,
        cli_train=CLITraining(
            epochs=10,
            all_train_images=True,
            base_width=16,
            min_lr=3e-3,
            dice_term=True,
            time_budget_min=1.5,
            scheduler="cosine",
        ),
    ),
    "full": Profile(
        name="full",
        description="the reports' settings: their image size, all data, their epochs (GPU)",
        image_size=None,
        max_epochs=None,
        max_images=None,
        max_batch_size=None,
        phantom_n=2000,
        time_budget_min=None,
    ),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """Return the named profile; ``None`` reads ``LABKIT_PROFILE`` (default ``smoke``).

    Raises:
        ValueError: the name is not one of ``PROFILES``.
    """
    if isinstance(name, Profile):
        return name
    source = "argument 'profile'"
    if name is None:
        name = os.environ.get(ENV_VAR) or DEFAULT_PROFILE
        source = f"environment variable {ENV_VAR}"
    key = str(name).strip().lower()
    if key not in PROFILES:
        valid = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown run profile {name!r} (from {source}); valid profiles: {valid}")
    return PROFILES[key]
