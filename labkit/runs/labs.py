"""Each lab's runs, in one entry: ``LABS["NN"]`` is everything labkit knows of how lab NN trains.

An entry (:class:`Lab`) holds the lab's trainings (``runs``: what the notebook trains, which
``labkit bench --labs`` repeats and ``labkit course plan`` sizes), the ``labkit train --model``
names whose settings are this lab's (``models``), its changes in the ``smoke`` and
``practical`` profiles as ``{setting: (value, reason)}``, the report figures it compares with
and its ablation rows. Adding a lab's runs is adding its entry here; nothing else lists labs.

Changes: ``smoke``'s settings are :class:`labkit.runs.recipes.CLITraining` fields (the
departures the recipe prints say why in its own words; the reasons here are for the reader);
``practical``'s are ``epochs``, ``base_width``, ``size``, ``images`` and ``lung_images``, each
reason printed where a recipe departs. Lab 07 (3-D CT) sizes itself in ``labkit.ct.settings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.runs.reports import PAPER, REPORT_004, ReportFigure, figures_table_md

Change = tuple[Any, str]  # (value, reason)


@dataclass(frozen=True)
class Run:
    """One training of a lab, as its notebook trains it.

    Attributes:
        label: the notebook's name for it.
        report: the ``REPORT_SETTINGS`` key its settings come from.
        model: another model trained with the report's settings (default: the report's).
        kwargs: ``build_model`` arguments over the report's (ablation switches).
        loss, inputs, lung_only: where the run departs from the recipe / report.
        stage: ``"lung"``: report 003's stage 1 (``REPORT_SETTINGS["003.cascade"].stages``).
        weights: ``"imagenet"`` for a run only made where the weights can be downloaded
            (``labkit bench --labs``, offline, leaves it out).
        monitor: the ``fit`` score the notebook selects the model by.
        restore_best: the notebook keeps the best epoch (``fit(restore_best=True)``).
    """

    label: str
    report: str
    model: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str | None = None
    inputs: str | None = None
    lung_only: bool | None = None
    stage: str | None = None
    weights: str | None = None
    monitor: str = "val_dice"
    restore_best: bool = False


@dataclass(frozen=True)
class Lab:
    """One lab's runs; see the module's docstring.

    Attributes:
        runs: the trainings, in the notebook's order.
        models: ``labkit train --model`` names whose profile changes are this lab's.
        smoke, practical: ``{setting: (value, reason)}`` per profile.
        figures: the report figures the lab's results sit beside.
        figures_note: a caveat on the heading of those figures.
        ablation: lab 06: row name -> (``fvpaspp`` switches, report 004's figure key);
            lab 07: row key -> (label, ``fvpaspp3d`` switches).
        cascade: labels of (stage 1, stage 2), scored once more as the cascade.
    """

    runs: tuple[Run, ...] = ()
    models: tuple[str, ...] = ()
    smoke: dict[str, Change] = field(default_factory=dict)
    practical: dict[str, Change] = field(default_factory=dict)
    figures: tuple[ReportFigure, ...] = ()
    figures_note: str = ""
    ablation: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    cascade: tuple[str, str] | None = None

    def changes(self, profile: str) -> dict[str, Change]:
        """This lab's ``{setting: (value, reason)}`` in the named profile (none in ``full``)."""
        return {"smoke": self.smoke, "practical": self.practical}.get(profile, {})


_T4 = "a free Colab T4 (fp16 AMP) in about 20 min (an estimate: labkit course plan)"
_WIDTH32 = "base width 32 instead of 64: 4x fewer multiply-adds per pixel"
# smp encoders from a random start (no ImageNet weights offline; their batch norms get
# CLITraining's bn_momentum, compared on Val in session 9). Chosen on Val in session 8
# (benchmarks/RESULTS.md 3.1; session 5 had chosen them by test Dice): lab 04's epochs,
# batch and schedule; lab 05's epochs, lr and batch (batch 16 on seeds 0-1). Lab 05's
# cosine decay follows lab 04's, not compared; its stage 1 keeps 48 lung images for time.
_RANDOM_START = "smp encoder from a random start: batch 8 for twice the steps"

# Lab 06's ablation, in labkit's reading of report 004 (the syllabus does not say which gate
# the later rows carry): the PASPP and deep-supervision rows add to the SE-gate FV row; the
# CE-gate row compares with the SE row just above it.
_ABLATION_06 = {  # name -> (build_model("fvpaspp", ...) switches, report 004's figure)
    "UNet": (dict(fv=False, paspp=False, deep_supervision=False), "004.unet"),
    "+FV (SE gate)": (dict(fv=True, gate="se", paspp=False, deep_supervision=False), "004.fv_se"),
    "+FV (CE gate)": (dict(fv=True, gate="ce", paspp=False, deep_supervision=False), "004.fv_ce"),
    "+FV +PASPP": (dict(fv=True, gate="se", paspp=True, deep_supervision=False), "004.fv_paspp"),
    "+FV +PASPP +DS": (dict(fv=True, gate="se", paspp=True, deep_supervision=True), "004.fv_paspp_ds"),
}  # fmt: skip
_LAB06 = dict(report="004.fvpaspp", monitor="val_dice_pooled", restore_best=True)
_LAB05 = dict(report="003.b0", monitor="val_dice_all", restore_best=True)
_DS = "UNet + FV + PASPP + DS"

LABS: dict[str, Lab] = {
    "01": Lab(),
    "02": Lab(
        runs=(Run("unet", "001.unet"),),
        models=("unet",),
        practical={"base_width": (32, _WIDTH32 + " (the syllabus gives no width for report 001)")},
        figures=(
            ReportFigure(
                key="001.unet",
                source="report 001",
                model="U-Net, 3 levels, BCE, 10 epochs",
                other={"'RMSE' (really MAE)": "0.0695"},
                note="trained on train+val and validated on test (a leak); the syllabus gives no Dice/IoU",
            ),
            PAPER,
        ),
    ),  # fmt: skip
    "03": Lab(
        runs=tuple(Run(f"resunet {loss}", "000.resunet", loss=loss) for loss in ("bce", "mse")),
        models=("resunet",),
        smoke={
            # epochs, batch, cosine decay and lr chosen on Val, seeds 0-2 (benchmarks/RESULTS.md
            # 3.1: sessions 8, and 6 and 9 for the lr); no Dice term by design
            "epochs": (15, "lab 03 compares plain losses: more epochs without the Dice term"),
            "dice_term": (False, "lab 03 compares plain losses: no Dice term"),
            "batch_size": (8, "twice the steps for the same work"),
            # chosen on Val (seeds 0-2: mean val Dice 0.633, against 0.560 at 3e-3;
            # benchmarks/RESULTS.md 3.1, session 9)
            "min_lr": (1e-3, "lr 1e-3, chosen on Val"),
        },
        practical={
            "epochs": (25, f"25 epochs instead of 100 per model: two models must fit {_T4}"),
            "base_width": (32, _WIDTH32 + " (the syllabus gives no width for report 000)"),
        },
        figures=(
            ReportFigure(
                key="000.bce",
                source="report 000",
                model="residual U-Net, BCE, 100 epochs",
                iou=0.634,
                other={"MAE": "4.794 (scale not stated)", "final val loss": "0.246"},
                note="COVID-19 images only",
            ),
            ReportFigure(
                key="000.mse",
                source="report 000",
                model="residual U-Net, MSE, 100 epochs",
                iou=0.629,
                other={"MAE": "4.915 (scale not stated)", "final val loss": "0.040"},
                note="losses of different kinds: 0.246 vs 0.040 are not comparable",
            ),
        ),
    ),  # fmt: skip
    "04": Lab(
        runs=(  # ResNet34 from random and from ImageNet weights, then B0: report 002's settings
            Run("unet-resnet34 (random start)", "002.resnet34"),
            Run("unet-resnet34 (ImageNet)", "002.resnet34", weights="imagenet"),
            Run(
                "unet-efficientnet-b0 (random start)",
                "002.resnet34",
                model="unet-efficientnet-b0",
                kwargs={"classes": 2},
            ),
        ),
        models=("unet-resnet34", "unet-efficientnet-b0"),
        smoke={
            "batch_size": (8, _RANDOM_START),
            "min_lr": (1e-3, "report 002's lr 1e-3"),
        },
        practical={
            "epochs": (15, f"15 epochs instead of 50 per model: three models must fit {_T4}")
        },
        figures=(
            ReportFigure(
                key="002.resnet34",
                source="report 002",
                model="U-Net, ResNet34 encoder (ImageNet), focal + Jaccard, 50 epochs",
                iou=0.77,
                other={"train IoU": "0.83"},
                note="best validation IoU; COVID-19 images only; 2-class softmax head",
            ),
            PAPER,
        ),
    ),  # fmt: skip
    "05": Lab(
        runs=(  # stage 1 (B3, lungs), stage 2 (B0, RGB + lung mask) and the one-stage B0 (RGB)
            Run("stage 1: b3, lungs (lung Dice)", "003.b3", stage="lung", restore_best=True),
            Run("stage 2 + true lungs: b0 on RGB + lung mask", inputs="rgb+lung", **_LAB05),
            Run("one stage: b0 on RGB", **_LAB05),
        ),
        models=("unet-efficientnet-b3", "cascade"),
        smoke={
            # chosen on Val, seeds 0-2: 10/12/14 epochs, lr 1e-3; batch 16 on seeds 0-1 (RESULTS.md 3.1)
            "epochs": (14, "14 epochs: two stages from a random start, chosen on Val"),
            "batch_size": (8, _RANDOM_START),
            "min_lr": (2e-3, "lr 2e-3 for the short run"),
        },
        practical={
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
        figures=(
            ReportFigure(
                key="003.lung",
                source="report 003",
                model="stage 1: lung U-Net, EfficientNet-B3, 0.7 Dice + 0.3 BCE",
                dice=0.9774,
                iou=0.9561,
                note="validation; lungs, not infection",
            ),
            ReportFigure(
                key="003.infection",
                source="report 003",
                model="stage 2: infection U-Net, EfficientNet-B0, RGB + lung mask input",
                dice=0.8854,
                iou=0.7896,
                other={"val Dice": "0.8912", "train Dice": "0.7157"},
                note="test split; prediction constrained to the lung",
            ),
        ),
        cascade=("stage 1: b3, lungs (lung Dice)", "stage 2 + true lungs: b0 on RGB + lung mask"),
    ),  # fmt: skip
    "06": Lab(
        runs=(
            *(Run(name, kwargs=switches, **_LAB06) for name, (switches, _) in _ABLATION_06.items()),
            Run(
                "+FV +PASPP +DS, original image",
                kwargs=_ABLATION_06["+FV +PASPP +DS"][0],
                lung_only=False,
                **_LAB06,
            ),
        ),
        models=("fvpaspp",),
        smoke={
            # chosen on Val: 3, 4, 5 epochs, every row, seeds 0-2 (benchmarks/RESULTS.md 3.1)
            "epochs": (5, "six models: 5 epochs each, chosen on Val"),
            "base_width": (8, "six models: width 8"),
            "batch_size": (4, "six models: batch 4 for the steps"),
        },
        practical={
            "size": (
                128,
                "128 px instead of 256: report 004's own patch side, 4x fewer multiply-adds",
            ),
            "epochs": (12, f"12 epochs instead of 200 per model: six models must fit {_T4}"),
            "base_width": (32, _WIDTH32 + ", the same for every row"),
        },
        figures=REPORT_004,
        figures_note="CT volumes (3-D patches), not X-rays: a different task",
        ablation=_ABLATION_06,
    ),  # fmt: skip
    "07": Lab(
        # report 004 on CT: the ablation, the original-input row and the per-subject scores
        # (labkit's labels Tables 2-5: the syllabus numbers no tables)
        figures=(
            *REPORT_004,
            ReportFigure(
                "004.original",
                "report 004",
                f"{_DS}, original input (Table 5)",
                dice=0.5074,
                note="not lung-masked; no other metric given",
            ),
            ReportFigure(
                "004.per_subject",
                "report 004",
                f"{_DS}, per test subject (Table 4)",
                other={"Dice": "83.04, 65.66, 70.74, 85.64"},
                note="model not named by the syllabus; inferred full model (mean 76.27 = its Dice)",
            ),
        ),
        # The ablation's rows (the syllabus's five results rows; labkit labels them Tables 2 and 3):
        # key -> (label, fvpaspp3d switches), as lab 06 builds them in 2-D: the PASPP and
        # deep-supervision rows sit on the SE gate (labkit's reading: they add to the +FV (SE) row).
        ablation={
            "unet": ("UNet", {"fv": False, "paspp": False, "deep_supervision": False}),
            "fv_se": (
                "UNet + FV (SE gate)",
                {"gate": "se", "paspp": False, "deep_supervision": False},
            ),
            "fv_ce": (
                "UNet + FV (CE gate)",
                {"gate": "ce", "paspp": False, "deep_supervision": False},
            ),
            "fv_paspp": ("UNet + FV + PASPP", {"gate": "se", "deep_supervision": False}),
            "fv_paspp_ds": ("UNet + FV + PASPP + deep supervision", {"gate": "se"}),
        },
    ),  # fmt: skip
}


def lab_of_model(model: str) -> str:
    """The lab whose profile changes ``labkit train --model model`` applies.

    Raises:
        ValueError: no lab trains ``model``.
    """
    for lab, entry in LABS.items():
        if model in entry.models:
            return lab
    names = ", ".join(m for entry in LABS.values() for m in entry.models)
    raise ValueError(f"unknown model {model!r}; valid names: {names}")


def find_figure(lab: str, key: str) -> ReportFigure | None:
    """The figure with this key among a lab's figures, or None."""
    entry = LABS.get(lab)
    return next((f for f in entry.figures if f.key == key), None) if entry else None


def report_table_md(lab: str) -> str:
    """A markdown table of one lab's report figures ('' when the lab has none)."""
    entry = LABS.get(lab)
    if entry is None or not entry.figures:
        return ""
    note = f" ({entry.figures_note})" if entry.figures_note else ""
    return figures_table_md(f"Lab {lab}{note}", entry.figures)
