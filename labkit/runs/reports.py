"""What the five student reports did and found (from the syllabus): their training
settings (``REPORT_SETTINGS``, the one home of those numbers) and the figures they give.

Settings: labs and ``labkit train`` ask a run profile for a report's run by its key
(``P.recipe("001.unet")``); the profile keeps the settings (``full``) or departs from them with
a printed reason (``smoke``, ``practical``). Each entry says where its numbers come from and
which ones the syllabus does not give for it (``assumed``: labkit's choice, and why).

Figures: all metrics are stored as fractions in [0, 1] (report 004's percentages divided by 100) so
they sit beside labkit's own numbers; ``other`` keeps figures that are not Dice / IoU /
sensitivity / precision exactly as reported, with their caveats. Which lab compares with which
figures is each lab's entry in ``labkit.runs.labs``; a notebook links a result to a figure with
``record_result(..., report="<key>")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReportSettings:
    """One training run as a report describes it (the ``full`` profile runs exactly this).

    Attributes:
        key: ``"<report>.<model>"``, e.g. ``"001.unet"``.
        source: where the numbers come from (report and syllabus section).
        model: ``labkit.models.build_model`` name (``labkit train --model``), or ``None``
            for a run no single labkit model reproduces.
        inputs: ``"grey"``, ``"rgb"``, ``"grey+lung"`` or ``"rgb+lung"``.
        size: image side in pixels.
        epochs, batch_size, lr, loss: as reported (``loss`` a ``labkit.losses`` name).
        optimizer, weight_decay, grad_clip, patience: ``TrainConfig`` settings.
        augment: ``"none"``, ``"flips"`` or ``"report003"``.
        covid_only: train and validate on COVID-19 images only.
        lung_only: mask the input to the lungs.
        deep_supervision: the model returns a list of outputs (report 004).
        base_width: first-level channels of a from-scratch U-Net; ``None`` for a
            pretrained encoder (its width is the encoder's).
        pretrained: the encoder starts from ImageNet weights.
        subset: ``"infection"`` (5,826 images) or ``"lung"`` (33,920).
        kwargs: further ``build_model`` arguments.
        stages: settings of a first training stage (the cascade's lung model).
        assumed: settings the syllabus does not give for the report: labkit's value and why.
    """

    key: str
    source: str
    model: str | None
    inputs: str
    size: int
    epochs: int
    batch_size: int
    lr: float
    loss: str
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float | None = None
    patience: int | None = None
    augment: str = "none"
    covid_only: bool = False
    lung_only: bool = False
    deep_supervision: bool = False
    base_width: int | None = None
    pretrained: bool = False
    subset: str = "infection"
    kwargs: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    assumed: dict[str, str] = field(default_factory=dict)


_LAB02 = "not in the syllabus for report 000: lab 02's, which are report 001's (its width: labkit's assumption)"
_REPORT003 = dict(
    source="report 003, stage 2 (syllabus, lab 05): 448 px, RGB + stage 1's lung mask "
    "(labkit train trains it on RGB alone: lab 05 runs the two stages), lr 1e-4, weight decay 1e-3, "
    "gradient clipping 1.0, dropout 0.3, 0.5 Dice + 0.3 BCE + 0.2 focal, up to 50 epochs, "
    "patience 12, flips/shift-scale-rotate/brightness/noise",
    inputs="rgb", size=448, epochs=50, batch_size=32, lr=1e-4, loss="combined",
    optimizer="adamw", weight_decay=1e-3, grad_clip=1.0, patience=12, augment="report003",
    pretrained=True,
)  # fmt: skip
# What labkit assumes where the syllabus is silent on report 003's stage 2.
_REPORT003_ASSUMED = {
    "optimizer": "AdamW: the syllabus says only 'weight decay' (labkit's assumption)",
    "batch_size": "32: stated for stage 1 only (labkit's assumption for stage 2)",
    "dropout": "0.3 before the head: the syllabus gives no placement (labkit's choice)",
}
REPORT_SETTINGS: dict[str, ReportSettings] = {
    s.key: s
    for s in (
        ReportSettings(
            key="001.unet",
            model="unet",
            inputs="grey",
            size=256,
            epochs=10,
            batch_size=16,
            lr=1e-4,
            loss="bce",
            base_width=64,
            source="report 001 (syllabus, lab 02): 256 px grey, 3-level U-Net, BCE, Adam "
            "lr 1e-4, 10 epochs, batch 16",
            assumed={"base_width": "not in the syllabus: 64, the usual U-Net's first level"},
        ),
        ReportSettings(
            key="000.resunet",
            model="resunet",
            inputs="grey",
            size=256,
            epochs=100,
            batch_size=16,
            lr=1e-4,
            loss="bce",
            covid_only=True,
            base_width=64,
            source="report 000 (syllabus, lab 03): 256 px grey in [0, 1], COVID-19 images "
            "only, 100 epochs with BCE (and again with MSE)",
            assumed={"lr": _LAB02, "batch_size": _LAB02, "base_width": _LAB02, "optimizer": _LAB02},
        ),
        ReportSettings(
            key="002.resnet34",
            model="unet-resnet34",
            inputs="rgb",
            size=256,
            epochs=50,
            batch_size=32,
            lr=1e-3,
            loss="focal_jaccard",
            covid_only=True,
            augment="flips",
            pretrained=True,
            kwargs={"classes": 2},
            source="report 002 (syllabus, lab 04): ImageNet ResNet34 U-Net, 256 px grey as "
            "RGB, 2-class softmax, focal + Jaccard, Adam lr 1e-3, 50 epochs, batch 32, "
            "flips, COVID-19 images only",
            assumed={
                "loss": "focal gamma 2, no alpha; Jaccard per image, averaged with the "
                "background class (labkit's reading)",
                "augment": "random horizontal and vertical flips (labkit's reading of 'flips')",
            },
        ),
        ReportSettings(
            key="003.b0",
            model="unet-efficientnet-b0",
            kwargs={"dropout": 0.3},
            **_REPORT003,
            assumed=_REPORT003_ASSUMED,
        ),
        ReportSettings(
            key="003.b3",
            model="unet-efficientnet-b3",
            **_REPORT003,
            assumed={
                **_REPORT003_ASSUMED,
                "training": "report 003 trains B3 on lungs only; labkit train "
                "--model unet-efficientnet-b3 trains it on infection with stage 2's settings",
            },
        ),
        ReportSettings(
            key="003.cascade",
            model="cascade",
            **_REPORT003,
            kwargs={
                "lung_model": "unet-efficientnet-b3",
                "infection_model": "unet-efficientnet-b0",
                "infection_kwargs": {"dropout": 0.3},
            },
            stages={
                "lung": dict(
                    loss="dice_bce", epochs=15, patience=5, weight_decay=1e-4, subset="lung"
                )
            },
            assumed=_REPORT003_ASSUMED,  # stage 1's own settings (the syllabus's): stages
        ),
        ReportSettings(
            key="004.fvpaspp",
            model="fvpaspp",
            inputs="grey",
            size=256,
            epochs=200,
            batch_size=16,
            lr=1e-4,
            loss="bce_dice",
            deep_supervision=True,
            lung_only=True,
            base_width=64,
            source="report 004 (syllabus, lab 06): FV + PASPP + deep supervision, 0.5 BCE + "
            "Dice, Adam lr 1e-4, 200 epochs, lung-masked input (labkit's inference)",
            assumed={
                "size": "report 004 used CT patches of 128 x 128 x 8; 256 is "
                "COVID-QU-Ex's X-ray size",
                "batch_size": "report 004: 5 3-D patches; 16 2-D images here",
                "base_width": "not in the syllabus: the U-Net's 64",
            },
        ),
        ReportSettings(
            key="004.ct",
            model=None,
            inputs="grey",
            size=128,
            epochs=200,
            batch_size=5,
            lr=1e-4,
            loss="bce_dice",
            deep_supervision=True,
            base_width=32,
            source="report 004 (syllabus, lab 06): Kaggle COVID-19 CT scans, 20 volumes "
            "(14/2/4), 3-D patches 128 x 128 x 8, 200 epochs, batch 5, Adam lr 1e-4, "
            "0.5 BCE + Dice",
            assumed={
                "base_width": "not in the syllabus: 32, the first level of the 3-D U-Net (Cicek et "
                "al. 2016); a 3-D model at the 2-D U-Net's 64 needs 4x the multiply-adds"
            },
        ),
    )
}


def report_settings(key: str) -> ReportSettings:
    """The settings of one report's run, e.g. ``report_settings("001.unet")``.

    Raises:
        ValueError: ``key`` is not in ``REPORT_SETTINGS``.
    """
    if key not in REPORT_SETTINGS:
        raise ValueError(
            f"unknown report run {key!r}; expected one of {', '.join(REPORT_SETTINGS)}"
        )
    return REPORT_SETTINGS[key]


def settings_for_model(model: str) -> ReportSettings:
    """The report run that ``labkit train --model model`` reproduces.

    Raises:
        ValueError: no report run trains ``model``.
    """
    found = [s for s in REPORT_SETTINGS.values() if s.model == model]
    if not found:
        names = ", ".join(s.model for s in REPORT_SETTINGS.values() if s.model)
        raise ValueError(f"unknown model {model!r}; valid names: {names}")
    return found[0]


@dataclass(frozen=True)
class ReportFigure:
    """One model's results as a report (or the dataset paper) gives them."""

    key: str
    source: str
    model: str
    dice: float | None = None
    iou: float | None = None
    sensitivity: float | None = None
    precision: float | None = None
    other: dict[str, str] = field(default_factory=dict)
    note: str = ""


PAPER = ReportFigure(  # the dataset paper: labs 02 and 04 compare with it
    key="paper",
    source="COVID-QU-Ex paper (Tahir et al. 2021)",
    model="abstract's figures (U-Net / U-Net++ / FPN compared)",
    dice=0.8821,
    iou=0.8305,
    note="infection localisation; how empty masks were averaged is not stated",
)


def _report_004(
    key: str,
    model: str,
    dice: float,
    iou: float,
    sensitivity: float,
    precision: float,
    note: str = "",
) -> ReportFigure:
    """One row of report 004's table, which gives all four metrics for every model."""
    return ReportFigure(
        f"004.{key}", "report 004", model, dice, iou, sensitivity, precision, note=note
    )


# Report 004's ablation table (all four metrics for every model): labs 06 and 07 compare with it.
REPORT_004: tuple[ReportFigure, ...] = (
    _report_004("unet", "UNet", 0.7196, 0.5704, 0.6480, 0.8435),
    _report_004("fv_se", "UNet + FV (SE gate)", 0.7229, 0.5731, 0.7009, 0.7727),
    _report_004("fv_ce", "UNet + FV (CE gate)", 0.7203, 0.5722, 0.7002, 0.7578),
    _report_004("fv_paspp", "UNet + FV + PASPP", 0.7471, 0.6055, 0.7106, 0.7983),
    _report_004(
        "fv_paspp_ds",
        "UNet + FV + PASPP + deep supervision",
        0.7627,
        0.6237,
        0.6938,
        0.8563,
        note="lung-masked input (labkit's inference: 76.27 is the syllabus's lung-masked "
        "figure); 0.5074 Dice on the original image",
    ),
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def describe_figure(figure: ReportFigure) -> str:
    """One line: source and the metrics it reports."""
    from labkit.metrics import SCORE_NAMES  # torch only when a figure is described

    parts = [
        f"{name} {_fmt(getattr(figure, name))}"
        for name in SCORE_NAMES
        if getattr(figure, name) is not None
    ]
    parts += [f"{name} {value}" for name, value in figure.other.items()]
    return f"{figure.source}: " + ", ".join(parts)


def figures_table_md(title: str, figures: tuple[ReportFigure, ...]) -> str:
    """A markdown table of report figures under a ``### title`` heading."""
    lines = [
        f"### {title}",
        "",
        "| source | model | Dice | IoU | sensitivity | precision | other | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        other = "; ".join(f"{k} {v}" for k, v in f.other.items()) or "-"
        lines.append(
            f"| {f.source} | {f.model} | {_fmt(f.dice)} | {_fmt(f.iou)} | "
            f"{_fmt(f.sensitivity)} | {_fmt(f.precision)} | {other} | {f.note or '-'} |"
        )
    return "\n".join(lines)
