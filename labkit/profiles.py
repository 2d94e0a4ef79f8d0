"""Run profiles: one place that says how big a run is.

* ``smoke`` — CPU-friendly: 64 px images, a few dozen images per split, 1–2 epochs.
  Used by CI, nbval and a student's first look. Results are not comparable to the reports.
* ``full`` — the reports' settings: their image size, all the data, their epochs.
  Meant for a GPU with the real COVID-QU-Ex data.

A notebook reads the profile in a cell tagged ``parameters`` (papermill convention), so it
can be overridden there; otherwise ``LABKIT_PROFILE`` or ``--profile`` chooses it.

Labs ask the profile for a setting *relative to the report*, e.g. ``P.epochs(100)`` is the
report's 100 epochs in ``full`` and at most ``max_epochs`` in ``smoke``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "LABKIT_PROFILE"
DEFAULT_PROFILE = "smoke"


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
    """

    name: str
    description: str
    image_size: int | None
    max_epochs: int | None
    max_images: int | None
    max_batch_size: int | None
    phantom_n: int
    time_budget_min: float | None

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
