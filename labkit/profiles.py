"""Run profiles: one place that says how big a run is.

* ``smoke`` — CPU-friendly: 64 px images, a few dozen images per split, 1–2 epochs.
  Used by CI, nbval and a student's first look. Results are not comparable to the reports.
* ``full`` — the reports' settings: their image size, all the data, their epochs.
  Meant for a GPU with the real COVID-QU-Ex data.

A notebook reads the profile in a cell tagged ``parameters`` (papermill convention), so it
can be overridden there; otherwise ``LABKIT_PROFILE`` or ``--profile`` chooses it.

Labs ask the profile for a setting *relative to the report*, e.g. ``P.epochs(100)`` is the
report's 100 epochs in ``full`` and at most ``max_epochs`` in ``smoke``.

``labkit train`` in ``smoke`` departs further from the reports (``Profile.cli_train``,
a :class:`CLITraining`): the notebooks' caps (2 epochs of 48 images at the report's lr) give
a 7.7M-parameter U-Net 6 Adam steps at lr 1e-4, which leaves it predicting background
everywhere (test Dice 0). One command should show a model that learns, so the CLI's smoke
run trains a narrower U-Net (base width 16) on every Train image for 10 epochs at lr >=
3e-3 with a Dice term added to plain BCE, and stops after the epoch that passes 1.5
minutes. On the phantom data that takes about 25-35 s on 2 idle CPU cores (a busy machine
may stop it after fewer epochs) and reaches a test COVID-19 Dice of about 0.6-0.67 (seeds
0-2), against 0.26 for predicting the whole lung and 0 for the notebooks' caps.
The run prints every departure and writes it to ``metrics.json`` (``departures``). The
``full`` profile has no ``cli_train``: the reports' settings, unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    """

    epochs: int
    all_train_images: bool
    base_width: int
    min_lr: float
    dice_term: bool
    time_budget_min: float

    def lr(self, report: float) -> float:
        """Learning rate to use where the report used ``report``."""
        return max(report, self.min_lr)

    def loss(self, report: str) -> str:
        """Loss name to use where the report used ``report``."""
        return "bce_dice" if self.dice_term and report == "bce" else report


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
