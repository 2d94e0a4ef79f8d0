"""``labkit bench --labs``: every lab's smoke training, timed, with its test Dice.

For each lab the same trainings the solution notebook runs in a profile (the settings come
from ``Profile.recipe`` / the profile's caps, the data from the profile's phantom set), with
labkit's models standing in for the students' (lab 02's U-Net is ``unet``, lab 03's residual
U-Net ``resunet``). Per training: wall time, epochs trained, why it stopped, and the test
Dice on the COVID-19 images; per lab the no-learning baseline ("infection = the whole lung",
the floor that labs 04/05 must beat). Seeds and CPU threads are arguments, so a seed sweep is
one command (the notebooks are not needed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from labkit.data import BatchLoader, load_split, resolve_data
from labkit.device import seed_everything
from labkit.evaluation import evaluate
from labkit.metrics import confusion_counts, dice
from labkit.models import build_model
from labkit.profiles import get_profile
from labkit.reports import report_settings
from labkit.train import TrainConfig, fit

_ABLATION = {  # lab 06's rows: fvpaspp switches (the notebook's ABLATION table)
    "UNet": dict(fv=False, paspp=False, deep_supervision=False),
    "+FV (SE gate)": dict(fv=True, gate="se", paspp=False, deep_supervision=False),
    "+FV (CE gate)": dict(fv=True, gate="ce", paspp=False, deep_supervision=False),
    "+FV +PASPP": dict(fv=True, gate="ce", paspp=True, deep_supervision=False),
    "+FV +PASPP +DS": dict(fv=True, gate="ce", paspp=True, deep_supervision=True),
}


@dataclass(frozen=True)
class Run:
    """One training of a lab, as its notebook trains it."""

    label: str
    report: str
    model: str | None = None  # default: the report's
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str | None = None  # default: the recipe's
    inputs: str | None = None  # default: the report's
    lung_only: bool | None = None
    recipe: bool = True  # Profile.recipe (labs 02, 03, 06) or the caps (labs 04, 05)


LAB_RUNS: dict[str, list[Run]] = {
    "02": [Run("unet", "001.unet")],
    "03": [Run(f"resunet {loss}", "000.resunet", loss=loss) for loss in ("bce", "mse")],
    "04": [
        Run("unet-resnet34 (random start)", "002.resnet34", recipe=False),
        Run(
            "unet-efficientnet-b0 (random start)",
            "002.resnet34",
            model="unet-efficientnet-b0",
            kwargs={"classes": 1},
            recipe=False,
        ),
    ],  # fmt: skip
    "05": [
        Run("stage 2: b0 on RGB + true lung mask", "003.b0", inputs="rgb+lung", recipe=False),
        Run("one stage: b0 on RGB", "003.b0", recipe=False),
    ],
    "06": [
        *(Run(name, "004.fvpaspp", kwargs=switches) for name, switches in _ABLATION.items()),
        Run(
            "+FV +PASPP +DS, original image",
            "004.fvpaspp",
            kwargs=_ABLATION["+FV +PASPP +DS"],
            lung_only=False,
        ),
    ],  # fmt: skip
}


def _channels(inputs: str) -> int:
    return 1 + 2 * inputs.startswith("rgb") + inputs.endswith("+lung")


def train_run(run: Run, profile: Any, root: Any, seed: int) -> dict[str, Any]:
    """Train and score one run; returns its figures (wall time, epochs, test Dice)."""
    s = report_settings(run.report)
    if run.recipe:
        r = profile.recipe(run.report)
        epochs, lr, loss, width, batch = r.epochs, r.lr, r.loss, r.base_width, r.batch_size
        size, limit, scheduler = r.size, r.train_images, r.scheduler
    else:
        epochs, lr, loss, width = profile.epochs(s.epochs), s.lr, s.loss, s.base_width
        batch, size, limit = profile.batch_size(s.batch_size), profile.size(s.size), None
        limit, scheduler = profile.images(), None
    loss = run.loss or loss
    inputs = run.inputs or s.inputs
    lung_only = s.lung_only if run.lung_only is None else run.lung_only
    classes = ["COVID-19"] if s.covid_only else None
    load = dict(size=size, classes=classes, progress=False)
    train = load_split(root, "Train", limit=limit, **load)
    val = load_split(root, "Val", limit=profile.images(), **load)
    test = load_split(root, "Test", size=size, limit=profile.images(), progress=False)
    seed_everything(seed)
    kwargs = dict(s.kwargs if run.model is None else {}, **run.kwargs)
    if width is not None:
        kwargs["base_width"] = width
    model = build_model(run.model or s.model, in_channels=_channels(inputs), **kwargs)
    common = dict(inputs=inputs, lung_only=lung_only, seed=seed)
    config = TrainConfig(
        epochs=epochs, batch_size=batch, lr=lr, loss=loss, scheduler=scheduler,
        optimizer=s.optimizer, weight_decay=s.weight_decay, grad_clip=s.grad_clip,
        patience=s.patience, deep_supervision=bool(kwargs.get("deep_supervision")),
        time_budget_min=profile.time_budget_min, seed=seed, device="cpu", progress=False,
        restore_best=run.report.startswith(("003", "004")),  # labs 05/06 keep the best epoch
    )  # fmt: skip
    t0 = time.perf_counter()
    history = fit(
        model,
        BatchLoader(train, batch, shuffle=True, **common),
        BatchLoader(val, batch, shuffle=False, **common),
        config,
    )
    seconds = time.perf_counter() - t0
    result = evaluate(
        model, test, batch_size=batch, inputs=inputs, lung_only=lung_only, progress=False
    )
    return {
        "label": run.label, "seed": seed, "seconds": seconds, "epochs": len(history),
        "planned_epochs": epochs, "stopped_reason": history.stopped_reason,
        "dice": result.covid["dice"], "train_images": len(train), "size": size,
    }  # fmt: skip


def whole_lung_baseline(profile: Any, root: Any, size: int) -> float:
    """Test Dice of calling every lung pixel infected (no learning), COVID-19 images."""
    test = load_split(root, "Test", size=size, limit=profile.images(), progress=False)
    covid = test.filter(classes=["COVID-19"])
    return dice(*confusion_counts(covid.lung, covid.infection)).nanmean().item()


def bench_labs(
    labs: list[str] | None = None,
    seeds: tuple[int, ...] = (0,),
    profile: str = "smoke",
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every lab's trainings for each seed; per lab the figures and the baseline.

    Raises:
        ValueError: an unknown lab number.
    """
    unknown = sorted(set(labs or []) - set(LAB_RUNS))
    if unknown:
        raise ValueError(f"--labs: no lab benchmark for {unknown}; expected {sorted(LAB_RUNS)}")
    if threads is not None:
        torch.set_num_threads(threads)
    prof = get_profile(profile)
    root = resolve_data("phantom", profile=prof, progress=False)
    out: dict[str, Any] = {
        "profile": prof.name, "threads": torch.get_num_threads(), "seeds": list(seeds),
        "labs": {},
    }  # fmt: skip
    for lab in labs or sorted(LAB_RUNS):
        p = prof.for_lab(lab)
        rows = []
        for seed in seeds:
            t0 = time.perf_counter()
            for run in LAB_RUNS[lab]:
                rows.append(train_run(run, p, root, seed))
                r = rows[-1]
                log(f"lab {lab} seed {seed} {r['label']}: {r['epochs']}/{r['planned_epochs']} "
                    f"epochs ({r['stopped_reason']}), {r['seconds']:.1f} s, test Dice "
                    f"{r['dice']:.3f}")  # fmt: skip
            log(f"lab {lab} seed {seed}: {time.perf_counter() - t0:.0f} s of training")
        size = rows[0]["size"]
        out["labs"][lab] = {"runs": rows, "whole_lung_dice": whole_lung_baseline(p, root, size)}
    return out


def format_labs(results: dict[str, Any]) -> str:
    """A markdown table: per lab and run, wall time and test Dice (min-max over seeds)."""
    lines = [
        f"profile `{results['profile']}`, {results['threads']} thread(s), seeds "
        f"{results['seeds']}; test Dice = per-image mean over the COVID-19 test images",
        "",
        "| lab | training | epochs | wall time per seed (s) | test Dice (min-max) | "
        "no-learning baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for lab, entry in results["labs"].items():
        labels = dict.fromkeys(r["label"] for r in entry["runs"])
        for label in labels:
            rows = [r for r in entry["runs"] if r["label"] == label]
            d = [r["dice"] for r in rows]
            secs = [r["seconds"] for r in rows]
            epochs = sorted({f"{r['epochs']}/{r['planned_epochs']}" for r in rows})
            stopped = any(r["stopped_reason"] == "time_budget" for r in rows)
            lines.append(
                f"| {lab} | {label} | {', '.join(epochs)}{' **safety limit**' if stopped else ''}"
                f" | {min(secs):.1f}-{max(secs):.1f} | {min(d):.3f}-{max(d):.3f} | "
                f"{entry['whole_lung_dice']:.3f} |"
            )
    return "\n".join(lines)
