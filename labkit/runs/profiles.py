"""Run profiles: how big a run is, and how (and why) it departs from the report it rebuilds.

* ``smoke`` — a fixed amount of work on a CPU (64 px phantom images, a few hundred images,
  a few epochs): CI, nbval and a student's first look. Never timed by the clock: the same
  seed and thread count give the same epochs and metrics on a quiet or a busy machine.
* ``practical`` — the real COVID-QU-Ex data, sized per lab so that a lab's training fits a
  free Colab T4 (fp16 AMP) in about 20 minutes (``labkit course plan`` estimates it).
* ``full`` — the reports' settings as the syllabus gives them
  (``labkit.runs.REPORT_SETTINGS``), plus labkit's stated assumptions where it gives none.

A lab asks its profile for a report's run by key: ``R = P.recipe("001.unet")`` gives the
epochs, lr, loss, width, batch, image size and Train images to use, with every departure
from the report and its reason (``print(R)``). ``lk.setup(lab=...)`` binds the profile to
the lab (``Profile.for_lab``), so that the lab's own changes (lab 06 trains six models, so
fewer epochs each) apply: they live in the lab's entry, ``labkit.runs.labs.LABS``, as
``(value, reason)``; ``build_recipe`` turns the profile, the lab's changes and the report's
settings into a :class:`Recipe`.

Why smoke departs (phantom data, 64 px, 2 CPU cores; lab 02's U-Net,
``benchmarks/caps_only.py``, RESULTS.md 3.1): the caps alone (2 epochs of 48 images at lr
1e-4) give a 7.7M-parameter U-Net 6 Adam steps, which leave it predicting background
everywhere (validation Dice 0.000 with seeds 0-2). So smoke trains a narrower net
(base width 16) on every Train image for 10 epochs at lr >= 3e-3 with a cosine decay (lab
02's; labs 03-06 change epochs and lr, each change printed with its reason), and
adds a Dice term to plain BCE (:class:`CLITraining` says why for each). A time limit stays
only as a safety net far above the expected time; when it stops a run,
``Recipe.warn_if_stopped`` / ``Profile.warn_if_stopped`` print a warning with the epochs
actually trained (``labkit train`` prints it too, and ``labkit course run`` marks the lab).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from labkit.runs.labs import LABS, Change
from labkit.runs.recipes import CLITraining, Recipe, stop_warning
from labkit.runs.reports import ReportSettings, report_settings

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
        time_budget_min: the safety limit per training, minutes, or ``None``.
        cli_train: the smoke departures (:class:`CLITraining`), or ``None``.
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
    lab: str | None = None
    phantom: bool = False

    def for_lab(self, lab: str) -> Profile:
        """This profile with ``lab``'s own changes (``lk.setup`` calls it)."""
        return replace(self, lab=str(lab))

    def changes(self) -> dict[str, Change]:
        """The bound lab's ``{setting: (value, reason)}`` in this profile (``labkit.runs.labs``)."""
        entry = LABS.get(self.lab or "")
        return entry.changes(self.name) if entry else {}

    def _practical(self, key: str) -> Any:
        """A practical departure's value for the bound lab, or ``None``."""
        change = self.changes().get(key)
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
                f"and {self.max_images} images per split before a lab's own changes (the "
                "recipe below lists them): a fixed amount of CPU work to see the code run "
                "(the full profile keeps the report's settings)"
            )
        changes = self.changes()
        if not changes:
            return f"{self.name} profile: the report's settings (and labkit's assumptions where "
            "the syllabus gives none: the recipe lists them)"
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
            report: a ``labkit.runs.REPORT_SETTINGS`` key, e.g. ``"001.unet"``; the
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


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="a fixed amount of CPU work per lab: 64 px phantom data, a few epochs",
        image_size=64,
        max_epochs=2,
        max_images=48,
        max_batch_size=16,
        phantom_n=240,
        time_budget_min=10.0,  # a safety net: a smoke training takes about a minute at most idle
        cli_train=CLITraining(
            epochs=10,
            all_train_images=True,
            base_width=16,
            min_lr=3e-3,
            dice_term=True,
            scheduler="cosine",
            bn_momentum=0.1,  # the random-start EfficientNet encoders (labkit.runs.recipes says why)
        ),
        phantom=True,
    ),  # fmt: skip
    "practical": Profile(
        name="practical",
        description="the real data, sized so that each lab's training fits a free Colab T4 in "
        "about 20 min (labkit course plan's estimate, not measured on a T4)",
        image_size=None,
        max_epochs=None,
        max_images=None,
        max_batch_size=None,
        phantom_n=2000,
        time_budget_min=40.0,  # a safety net, twice the 20-minute target
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


def build_recipe(
    profile: Profile,
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
    batch = None if given["batch_size"] is None else profile.batch_size(given["batch_size"])
    out: dict[str, Any] = dict(
        epochs=profile.epochs(given["epochs"]), lr=given["lr"], loss=given["loss"],
        base_width=given["base_width"], batch_size=batch, train_images=profile.images(),
        time_budget_min=profile.time_budget_min, scheduler=None,
        size=profile.size(s.size) if s else None,
    )  # fmt: skip
    if profile.cli_train is None:  # full (no changes) or practical (the lab's, with reasons)
        why = _lab_departures(profile, out)
    else:
        why = _smoke_departures(profile, out, given, s, smoke or {})
    return Recipe(**out, profile=profile.name, report=report, departures=why)


def _lab_departures(profile: Profile, out: dict[str, Any]) -> dict[str, str]:
    """Apply the bound lab's practical changes to ``out``; their reasons by setting."""
    why: dict[str, str] = {}
    for key, (value, reason) in profile.changes().items():
        target = {"images": "train_images", "lung_images": None}.get(key, key)
        if target == "base_width" and out["base_width"] is None:
            continue  # a pretrained encoder has no width to change
        if target:
            out[target], why[target] = value, reason
    return why


def _smoke_departures(
    profile: Profile,
    out: dict[str, Any],
    given: dict[str, Any],
    s: ReportSettings | None,
    smoke: dict[str, Any],
) -> dict[str, str]:
    """Apply ``cli_train`` (with the lab's and this run's changes) to ``out``; the reasons."""
    assert profile.cli_train is not None
    lab = {key: value for key, (value, _) in profile.changes().items()}
    cli = replace(replace(profile.cli_train, **_checked(lab)), **_checked(smoke))
    epochs, lr, loss, base_width = (given[k] for k in ("epochs", "lr", "loss", "base_width"))
    capped, images, batch = out["epochs"], out["train_images"], out["batch_size"]
    why: dict[str, str] = {}
    assumed = s.assumed if s else {}

    def depart(key: str, value: Any, reason: str) -> None:  # one setting, one reason
        out[key], why[key] = value, reason

    def theirs(key: str, value: Any) -> str:  # "the report's 64", or whose value it is
        text = f"{value:g}" if isinstance(value, float) else f"{value}"
        return f"{text} ({assumed[key]})" if key in assumed else f"the report's {text}"

    if min(cli.epochs, epochs) != capped:
        n = min(cli.epochs, epochs)
        report_part = "as the report" if n == epochs else f"instead of the report's {epochs}"
        depart("epochs", n, f"{n} epochs ({report_part}), not the smoke profile's cap of "
               f"{capped}: {capped} epochs of a few batches are too few steps to learn")  # fmt: skip
    if cli.all_train_images and images is not None:
        depart("train_images", None,
               f"every Train image instead of {images} (Val and Test keep {images})")  # fmt: skip
    if base_width is not None and cli.base_width != base_width:
        depart("base_width", cli.base_width,
               f"base width {cli.base_width} instead of {theirs('base_width', base_width)}: "
               f"{(base_width / cli.base_width) ** 2:g}x fewer multiply-adds per pixel")  # fmt: skip
    if batch is not None and cli.batch_size is not None and cli.batch_size != batch:
        capped_by = (
            "" if batch == given["batch_size"] else f" (the profile caps {given['batch_size']})"
        )
        depart("batch_size", cli.batch_size,
               f"batch {cli.batch_size} instead of {batch}{capped_by}: "
               f"{batch / cli.batch_size:g}x as many (smaller) Adam steps for the same work")  # fmt: skip
    if cli.lr(lr) != lr:
        depart("lr", cli.lr(lr), f"lr {cli.lr(lr):g} instead of {theirs('lr', lr)}: few steps")
    if cli.scheduler is not None:
        depart("scheduler", cli.scheduler,
               f"{cli.scheduler} lr decay instead of a constant lr (labkit's assumption for the "
               "report: the syllabus gives no schedule): the last epochs settle instead of "
               "jumping about at a large lr")  # fmt: skip
    if cli.bn_momentum is not None and base_width is None:  # a pretrained encoder's
        depart("bn_momentum", cli.bn_momentum,
               f"batch-norm momentum {cli.bn_momentum:g} (PyTorch's default, ResNet34's) "
               "instead of EfficientNet's 0.01: with 0.01 the running statistics that eval "
               "mode uses lag far behind the network in a run this short (lab 04 says what "
               "was measured)")  # fmt: skip
    if cli.loss(loss) != loss:
        depart("loss", cli.loss(loss), f"loss {cli.loss(loss)} (0.5 BCE + Dice) instead of "
               f"the report's {loss}: plain BCE can settle on background everywhere when infection is rare")  # fmt: skip
    if profile.time_budget_min is not None:
        why["time_budget_min"] = (
            f"a fixed amount of work, not a time budget: {profile.time_budget_min:g} min is "
            "only a safety limit, and a warning says so if it stops the run"
        )
    return why


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(CLITraining)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"smoke: unknown setting(s) {unknown}; expected some of {sorted(known)}")
    return changes
