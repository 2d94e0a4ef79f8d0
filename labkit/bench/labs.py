"""``labkit bench --labs``: every lab's smoke training, timed, with its Val and test Dice.

For each lab the same trainings the solution notebook runs in a profile (the settings come
from ``Profile.recipe``, the augmentation from the report, the data from the profile's
phantom set), with
labkit's models standing in for the students' (lab 02's U-Net is ``unet``, lab 03's residual
U-Net ``resunet``). Per training: wall time, epochs trained, why it stopped, the
validation score the notebook selects by (``fit``'s ``monitor`` for the model it keeps:
the best epoch with ``restore_best``, else the last), and the test Dice on the COVID-19
images. Settings are chosen on the validation score only (``score_test=False`` leaves the
test images alone); the test Dice is the final figure of a setting already chosen; per lab the no-learning baseline ("infection = the whole lung",
the floor that labs 04/05 must beat). Lab 05 trains its stage 1 (the lungs, scored by its
lung Dice on the test images) and scores its stage 2 twice as the notebook does: given and
constrained by the true lungs, and as the cascade behind stage 1's lungs. Seeds and CPU
threads are arguments, so a seed sweep is one command (the notebooks are not needed).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from labkit.data import Augment, BatchLoader, load_split, resolve_data
from labkit.device import seed_everything
from labkit.evaluation import evaluate
from labkit.metrics import confusion_counts, dice
from labkit.models import CascadeModel, build_model, mask_outside_lung, set_batch_norm_momentum
from labkit.runs import LABS, Profile, Run, get_profile, report_settings
from labkit.train import TrainConfig, fit


def lab_runs(lab: str) -> list[Run]:
    """The lab's trainings this bench repeats: its notebook's, less those that need ImageNet
    weights (offline; the smp encoders start at random)."""
    return [run for run in LABS[lab].runs if run.weights is None]


def benched_labs() -> list[str]:
    """The labs with trainings to bench, in order."""
    return [lab for lab in LABS if lab_runs(lab)]


def _channels(inputs: str) -> int:
    return 1 + 2 * inputs.startswith("rgb") + inputs.endswith("+lung")


class _TrueLungs(nn.Module):
    """Stage 2 given the true lung mask (last input channel) and constrained by it."""

    def __init__(self, infection: nn.Module) -> None:
        super().__init__()
        self.infection = infection

    def forward(self, x: Tensor) -> Tensor:
        return mask_outside_lung(self.infection(x), x[:, -1:])


def train_run(
    run: Run,
    profile: Profile,
    root: Any,
    seed: int,
    score_test: bool = True,
    smoke: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and score one run; returns its figures (wall time, epochs, Val and test Dice).

    Args:
        run: the training.
        profile: a ``Profile`` bound to the run's lab (``for_lab``).
        root: the data root.
        seed: the run's seed.
        score_test: score the test images (``"dice"``); ``False`` gives ``"dice": None``,
            for choosing settings on the validation score (``"val"``) alone.
        smoke: changes over the lab's own smoke changes (``Profile.recipe``'s ``smoke``):
            a candidate recipe (``benchmarks/select_smoke.py``).

    Returns:
        the figures; the trained model is under ``"model"`` (the cascade needs stage 1).
    """
    s = report_settings(run.report)
    lung = report_settings("003.cascade").stages["lung"] if run.stage == "lung" else {}
    stage = {k: lung[k] for k in ("epochs", "loss") if k in lung}
    r = profile.recipe(run.report, smoke=smoke, **stage)
    epochs, lr, loss, width, batch = r.epochs, r.lr, r.loss, r.base_width, r.batch_size
    size, scheduler = r.size, r.scheduler
    limit = profile.images(subset="lung") if lung else r.train_images
    loss = run.loss or loss
    inputs = run.inputs or s.inputs
    target = "lung" if lung else "infection"
    lung_only = s.lung_only if run.lung_only is None else run.lung_only
    classes = ["COVID-19"] if s.covid_only else None
    load = dict(size=size, classes=classes, progress=False, subset=lung.get("subset", "infection"))
    train = load_split(root, "Train", limit=limit, **load)
    val = load_split(root, "Val", limit=profile.images(subset=load["subset"]), **load)
    seed_everything(seed)
    kwargs = dict(s.kwargs if run.model is None else {}, **run.kwargs)
    if width is not None:
        kwargs["base_width"] = width
    model = build_model(run.model or s.model, in_channels=_channels(inputs), **kwargs)
    if r.bn_momentum is not None:
        set_batch_norm_momentum(model, r.bn_momentum)
    common = dict(inputs=inputs, lung_only=lung_only, seed=seed, target=target)
    config = TrainConfig(
        epochs=epochs, batch_size=batch, lr=lr, loss=loss, scheduler=scheduler,
        optimizer=s.optimizer, weight_decay=lung.get("weight_decay", s.weight_decay),
        grad_clip=None if lung else s.grad_clip, patience=lung.get("patience", s.patience),
        deep_supervision=bool(kwargs.get("deep_supervision")),
        monitor=run.monitor,
        time_budget_min=profile.time_budget_min, seed=seed, device="cpu", progress=False,
        restore_best=run.restore_best,  # labs 05/06 keep the best epoch
    )  # fmt: skip
    augment = {"flips": Augment.flips(), "report003": Augment.report003()}.get(s.augment)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # fit's epoch lines: the bench logs its own
        history = fit(
            model,
            BatchLoader(train, batch, shuffle=True, augment=augment, **common),
            BatchLoader(val, batch, shuffle=False, **common),
            config,
        )
    seconds = time.perf_counter() - t0
    # the validation score of the model the notebook keeps: what settings are chosen by
    kept = history.best_metric if config.restore_best else getattr(history, config.monitor)[-1]
    dice_test = dice_on_test(run, profile, root, model) if score_test else None
    return {
        "label": run.label, "seed": seed, "seconds": seconds, "epochs": len(history),
        "planned_epochs": epochs, "stopped_reason": history.stopped_reason,
        "monitor": config.monitor, "val": kept, "dice": dice_test,
        "train_images": len(train), "size": size, "model": model, "batch": batch,
    }  # fmt: skip


def dice_on_test(
    run: Run, profile: Profile, root: Any, model: nn.Module, smoke: dict[str, Any] | None = None
) -> float:
    """A trained run's test Dice as its notebook scores it: the COVID-19 test images (stage 1:
    all of them, lung Dice), stage 2 given and constrained by the true lungs."""
    s = report_settings(run.report)
    lung = run.stage == "lung"
    inputs = run.inputs or s.inputs
    lung_only = s.lung_only if run.lung_only is None else run.lung_only
    r = profile.recipe(run.report, smoke=smoke)
    test = load_split(root, "Test", size=r.size, limit=profile.images(), progress=False)
    scored = _TrueLungs(model) if inputs.endswith("+lung") else model
    result = evaluate(
        scored, test, batch_size=r.batch_size, inputs=inputs, target="lung" if lung else
        "infection", lung_only=lung_only, progress=False,
    )  # fmt: skip
    return (result.all_images if lung else result.covid)["dice"]


def score_cascade(
    lung: dict[str, Any], stage2: dict[str, Any], profile: Profile, root: Any
) -> dict:
    """Lab 05's cascade: stage 2 behind stage 1's predicted lungs, scored on the test images."""
    test = load_split(root, "Test", size=stage2["size"], limit=profile.images(), progress=False)
    cascade = CascadeModel(lung["model"], stage2["model"])
    result = evaluate(cascade, test, batch_size=stage2["batch"], inputs="rgb", progress=False)
    return dict(
        stage2, label="cascade: stage 1's lungs -> stage 2", seconds=lung["seconds"] +
        stage2["seconds"], dice=result.covid["dice"], epochs=stage2["epochs"],
    )  # fmt: skip


def whole_lung_baseline(profile: Profile, root: Any, size: int) -> float:
    """Test Dice of calling every lung pixel infected (no learning), COVID-19 images."""
    test = load_split(root, "Test", size=size, limit=profile.images(), progress=False)
    covid = test.filter(classes=["COVID-19"])
    return dice(*confusion_counts(covid.lung, covid.infection)).nanmean().item()


def bench_labs(
    labs: list[str] | None = None,
    seeds: tuple[int, ...] = (0,),
    profile: str | Profile = "smoke",
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every lab's trainings for each seed; per lab the figures and the baseline.

    Raises:
        ValueError: an unknown lab number.
    """
    unknown = sorted(set(labs or []) - set(benched_labs()))
    if unknown:
        raise ValueError(f"--labs: no lab benchmark for {unknown}; expected {benched_labs()}")
    if threads is not None:
        torch.set_num_threads(threads)
    prof = get_profile(profile)
    root = resolve_data("phantom", prof.phantom_n, progress=False)
    out: dict[str, Any] = {
        "profile": prof.name, "threads": torch.get_num_threads(), "seeds": list(seeds),
        "labs": {},
    }  # fmt: skip
    for lab in labs or benched_labs():
        p = prof.for_lab(lab)
        rows = []
        for seed in seeds:
            t0 = time.perf_counter()
            runs: dict[str, dict[str, Any]] = {}
            cascade = LABS[lab].cascade
            for run in lab_runs(lab):
                runs[run.label] = train_run(run, p, root, seed)
                if cascade and run.label == cascade[1]:
                    stage1, stage2 = (runs[label] for label in cascade)
                    runs["cascade"] = score_cascade(stage1, stage2, p, root)
            for r in runs.values():
                log(f"lab {lab} seed {seed} {r['label']}: {r['epochs']}/{r['planned_epochs']} "
                    f"epochs ({r['stopped_reason']}), {r['seconds']:.1f} s, {val_text(r)}, "
                    f"test Dice {r['dice']:.3f}")  # fmt: skip
                rows.append({k: v for k, v in r.items() if k != "model"})
            log(f"lab {lab} seed {seed}: {time.perf_counter() - t0:.0f} s of training")
        size = rows[0]["size"]
        out["labs"][lab] = {"runs": rows, "whole_lung_dice": whole_lung_baseline(p, root, size)}
    return out


def val_text(r: dict[str, Any]) -> str:
    """``"val_dice 0.712"``: a run's selection score (``-`` where no epoch scored one)."""
    value = r.get("val")
    return f"{r['monitor']} {'-' if value is None else f'{value:.3f}'}"


def format_labs(results: dict[str, Any]) -> str:
    """A markdown table: per lab and run, wall time, Val and test Dice (min-max over seeds)."""
    lines = [
        f"profile `{results['profile']}`, {results['threads']} thread(s), seeds "
        f"{results['seeds']}; Val = the score the notebook selects by, for the model it "
        "keeps; test Dice = per-image mean over the COVID-19 test images",
        "",
        "| lab | training | epochs | wall time per seed (s) | Val (min-max) | "
        "test Dice (min-max) | no-learning baseline |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lab, entry in results["labs"].items():
        labels = dict.fromkeys(r["label"] for r in entry["runs"])
        for label in labels:
            rows = [r for r in entry["runs"] if r["label"] == label]
            d = [r["dice"] for r in rows]
            v = [r["val"] for r in rows if r.get("val") is not None]
            val = f"{rows[0]['monitor']} {min(v):.3f}-{max(v):.3f}" if v else "-"
            secs = [r["seconds"] for r in rows]
            epochs = sorted({f"{r['epochs']}/{r['planned_epochs']}" for r in rows})
            stopped = any(r["stopped_reason"] == "time_budget" for r in rows)
            lines.append(
                f"| {lab} | {label} | {', '.join(epochs)}{' **safety limit**' if stopped else ''}"
                f" | {min(secs):.1f}-{max(secs):.1f} | {val} | {min(d):.3f}-{max(d):.3f} | "
                f"{entry['whole_lung_dice']:.3f} |"
            )
    return "\n".join(lines)
