"""The five student reports' own figures, per lab (from the syllabus), for results tables.

All metrics are stored as fractions in [0, 1] (report 004's percentages divided by 100) so
they sit beside labkit's own numbers; ``other`` keeps figures that are not Dice / IoU /
sensitivity / precision exactly as reported, with their caveats. A notebook links a result to
a figure with ``record_result(..., report="<key>")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


_PAPER = ReportFigure(
    key="paper",
    source="COVID-QU-Ex paper (Tahir et al. 2021)",
    model="best of U-Net / U-Net++ / FPN",
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


REPORT_FIGURES: dict[str, list[ReportFigure]] = {
    "01": [],
    "02": [
        ReportFigure(
            key="001.unet",
            source="report 001",
            model="U-Net, 3 levels, BCE, 10 epochs",
            other={"'RMSE' (really MAE)": "0.0695"},
            note="trained on train+val and validated on test (a leak); no Dice/IoU reported",
        ),
        _PAPER,
    ],
    "03": [
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
    ],
    "04": [
        ReportFigure(
            key="002.resnet34",
            source="report 002",
            model="U-Net, ResNet34 encoder (ImageNet), focal + Jaccard, 50 epochs",
            iou=0.77,
            other={"train IoU": "0.83"},
            note="best validation IoU; COVID-19 images only; 2-class softmax head",
        ),
        _PAPER,
    ],
    "05": [
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
    ],
    "06": [
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
            note="lung-masked input; 0.5074 Dice on the original image",
        ),
    ],
}
_CT_NOTE = "CT volumes (3-D patches), not X-rays: a different task"


def find_figure(lab: str, key: str) -> ReportFigure | None:
    """The figure with this key in a lab's list, or None."""
    return next((f for f in REPORT_FIGURES.get(lab, []) if f.key == key), None)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def describe_figure(figure: ReportFigure) -> str:
    """One line: source and the metrics it reports."""
    parts = [
        f"{name} {_fmt(getattr(figure, name))}"
        for name in ("dice", "iou", "sensitivity", "precision")
        if getattr(figure, name) is not None
    ]
    parts += [f"{name} {value}" for name, value in figure.other.items()]
    return f"{figure.source}: " + ", ".join(parts)


def report_table_md(lab: str) -> str:
    """A markdown table of one lab's report figures ('' when the lab has none)."""
    figures = REPORT_FIGURES.get(lab, [])
    if not figures:
        return ""
    lines = [
        f"### Lab {lab}" + (f" ({_CT_NOTE})" if lab == "06" else ""),
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
