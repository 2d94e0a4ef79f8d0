"""Choose the smoke recipes of labs 02-06 on the validation split, then score the choice once.

For each lab, each candidate setting (a change over the lab's smoke changes,
``labkit.runs.LABS[lab].smoke``) trains the lab's models as ``labkit bench --labs`` does (``labkit.bench.labs.train_run``) for every
seed, with the test images left alone (``score_test=False``). The candidate with the highest
mean validation score over the seeds wins: the score each notebook selects its epoch by
(``fit``'s ``monitor``, for the model the notebook keeps), so Val chooses both the epoch and
the recipe and Test is used once, for the winner's models (the same trainings: nothing is
trained again, and lab 05 adds its stage 1 and the cascade). A tie (within 0.005) goes to
the candidate listed first, the current recipe.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/select_smoke.py --labs 03 --seeds 0 1 2

prints one line per training and a markdown table per lab, and writes the figures to
``--out`` (JSON). The candidates are the settings earlier sessions tried (RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from labkit.bench.labs import dice_on_test, lab_runs, score_cascade, train_run
from labkit.data import load_split, resolve_data
from labkit.evaluation import evaluate
from labkit.models import CascadeModel
from labkit.runs import LABS, get_profile

# lab -> [(name, changes over that lab's smoke changes, labkit.runs.LABS[lab].smoke)]; the first is the current recipe
CANDIDATES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "02": [("cosine (current)", {}), ("constant lr", {"scheduler": None})],
    # lr chosen on Val in session 6; epochs and the schedule re-chosen here (issue 25)
    "03": [
        ("15 epochs, cosine (current)", {}),
        ("constant lr", {"scheduler": None}),
        ("10 epochs", {"epochs": 10}),
        ("batch 16", {"batch_size": 16}),
        ("lr 3e-3", {"min_lr": 3e-3}),  # session 6's comparison, re-run on session 9's code
    ],
    # EfficientNet's own batch-norm momentum: RESULTS.md, measured apart (Val, 3 seeds)
    "04": [
        ("10 epochs, cosine (current)", {}),
        ("constant lr", {"scheduler": None}),
        ("8 epochs", {"epochs": 8}),
        ("batch 16", {"batch_size": 16}),
        # session 5 chose momentum 0.1 for the random-start encoders by test Dice
        ("bn momentum 0.01", {"bn_momentum": 0.01}),
    ],
    # session 8 ran these with 12 epochs as the recipe and chose 14 (RESULTS.md 3.1)
    "05": [
        ("14 epochs, lr 2e-3 (current)", {}),
        ("12 epochs, lr 2e-3", {"epochs": 12}),
        ("10 epochs, lr 2e-3", {"epochs": 10}),
        ("14 epochs, lr 1e-3", {"min_lr": 1e-3}),
        ("batch 16", {"batch_size": 16}),
        ("bn momentum 0.01", {"bn_momentum": 0.01}),
        # cheaper (issue 28: lab 05's time): fewer epochs at a higher lr
        ("10 epochs, lr 3e-3", {"epochs": 10, "min_lr": 3e-3}),
        ("12 epochs, lr 3e-3", {"epochs": 12, "min_lr": 3e-3}),
    ],
    # session 8 ran these with 4 epochs as the recipe and chose 5 (RESULTS.md 3.1)
    "06": [("5 epochs (current)", {}), ("3 epochs", {"epochs": 3}), ("4 epochs", {"epochs": 4})],
}
# the trainings a candidate is judged on (lab 05: its two infection models; stage 1 learns
# the lungs, which every candidate learns alike, Dice ~0.97)
JUDGED = {"05": [r for r in lab_runs("05") if r.stage is None]}


def candidate_profile(lab: str) -> Any:
    """The smoke profile bound to ``lab`` with no safety time limit: a recipe is a fixed
    amount of work, and on a busy machine the limit would cut a run short (it did: lab 05's
    stage 2 at 7 of 12 epochs, load ~10). A candidate's changes go to each recipe."""
    return replace(get_profile("smoke"), time_budget_min=None).for_lab(lab)


def select(
    lab: str, seeds: list[int], root: Any, log: Any = print, only: list[str] | None = None
) -> dict[str, Any]:
    """Train every candidate of ``lab`` (Val only), choose, then score the winner on Test.
    ``only``: train just these candidates and the current recipe (the first)."""
    rows, models = [], {}
    for i, (name, changes) in enumerate(CANDIDATES[lab]):
        if only and i > 0 and name not in only:
            continue
        profile = candidate_profile(lab)
        per_seed = []
        for seed in seeds:
            for run in JUDGED.get(lab, lab_runs(lab)):
                r = train_run(run, profile, root, seed, score_test=False, smoke=changes)
                log(f"lab {lab} [{name}] seed {seed} {run.label}: {r['epochs']}/"
                    f"{r['planned_epochs']} epochs ({r['stopped_reason']}), "
                    f"{r['seconds']:.1f} s, {r['monitor']} {r['val']:.3f}")  # fmt: skip
                models[name, seed, run.label] = r.pop("model")
                per_seed.append(r)
        vals = [r["val"] for r in per_seed]
        rows.append({"name": name, "changes": changes, "runs": per_seed,
                     "mean_val": statistics.fmean(vals), "min_val": min(vals)})  # fmt: skip
    best = max(r["mean_val"] for r in rows)
    winner = next(r for r in rows if r["mean_val"] >= best - 0.005)
    # Test, once: the winner's trained models (lab 05 also trains stage 1 for the cascade)
    profile, chosen = candidate_profile(lab), winner["changes"]
    for r in winner["runs"]:
        run = next(x for x in lab_runs(lab) if x.label == r["label"])
        model = models[winner["name"], r["seed"], r["label"]]
        r["dice"] = dice_on_test(run, profile, root, model, smoke=chosen)
        log(f"lab {lab} chosen [{winner['name']}] seed {r['seed']} {r['label']}: "
            f"{r['monitor']} {r['val']:.3f}, test Dice {r['dice']:.3f}")  # fmt: skip
    stages = LABS[lab].cascade  # (stage 1's label, stage 2's label), or None
    if stages:
        stage1 = next(x for x in lab_runs(lab) if x.label == stages[0])
        for seed in seeds:
            lung = train_run(stage1, profile, root, seed, smoke=chosen)
            stage2 = next(r for r in winner["runs"] if r["seed"] == seed and
                          r["label"] == stages[1])  # fmt: skip
            model2 = models[winner["name"], seed, stage2["label"]]
            scored = score_cascade(lung, {**stage2, "model": model2}, profile, root)
            for extra in (lung, scored):
                log(f"lab {lab} chosen seed {seed} {extra['label']}: {extra['seconds']:.1f} s, "
                    f"test Dice {extra['dice']:.3f}")  # fmt: skip
                winner["runs"].append({k: v for k, v in extra.items() if k != "model"})
    return {"candidates": rows, "winner": winner["name"], "changes": winner["changes"]}


# lab 05's stage 1 (lungs): (name, epochs, lung images per split; None = all). Judged by
# what stage 1 is for: the cascade's Val Dice (stage 2 of the current recipe behind it).
LUNG_STAGE = [
    ("14 epochs, 48 images (current)", 14, 48),
    ("8 epochs, 48 images", 8, 48),
    ("5 epochs, 48 images", 5, 48),
    ("14 epochs, all images", 14, None),
    ("8 epochs, all images", 8, None),
    ("5 epochs, all images", 5, None),
]


def select_lung_stage(seeds: list[int], root: Any, log: Any = print) -> dict[str, Any]:
    """Lab 05's stage 1 on Val: each candidate's lung Dice and the cascade's Val Dice.

    Stage 2 is trained once per seed (the current recipe, Val only). Every candidate is
    scored on the same images: lung Dice on the notebook's 48 lung Val images, the cascade's
    Dice on the COVID-19 images of the notebook's infection Val split. Rule, fixed before the
    run: the cheapest candidate (epochs x images) whose mean cascade Val Dice is within 0.005
    of the best mean wins (stage 1 is a cost of lab 05, issue 28). Test: the winner, once.
    """
    profile = candidate_profile("05")
    runs = lab_runs("05")
    stage1 = next(r for r in runs if r.stage == "lung")
    stage2 = next(r for r in runs if r.label == LABS["05"].cascade[1])
    size = profile.recipe(stage2.report).size
    lung_val = load_split(root, "Val", subset="lung", size=size, limit=48, progress=False)
    val = load_split(root, "Val", size=size, limit=profile.images(), progress=False)
    second = {seed: train_run(stage2, profile, root, seed, score_test=False) for seed in seeds}
    rows = []
    for name, epochs, images in LUNG_STAGE:
        p = replace(profile, max_images=images)  # stage 1 loads only the lung subset
        per_seed = []
        for seed in seeds:
            lung = train_run(stage1, p, root, seed, score_test=False, smoke={"epochs": epochs})
            lung_dice = evaluate(lung["model"], lung_val, target="lung", inputs="rgb",
                                 batch_size=8, progress=False).all_images["dice"]  # fmt: skip
            cascade = CascadeModel(lung["model"], second[seed]["model"])
            casc = evaluate(cascade, val, inputs="rgb", batch_size=8, progress=False)
            r = {"seed": seed, "seconds": lung["seconds"], "lung_val": lung_dice,
                 "cascade_val": casc.covid["dice"], "model": lung["model"]}  # fmt: skip
            log(f"lab 05 stage 1 [{name}] seed {seed}: {lung['seconds']:.1f} s, lung Val Dice "
                f"{lung_dice:.3f}, cascade Val Dice {r['cascade_val']:.3f}")  # fmt: skip
            per_seed.append(r)
        cv = [r["cascade_val"] for r in per_seed]
        rows.append({"name": name, "cost": epochs * (images or 10**6), "runs": per_seed,
                     "mean_val": statistics.fmean(cv), "min_val": min(cv),
                     "mean_lung": statistics.fmean(r["lung_val"] for r in per_seed)})  # fmt: skip
    best = max(r["mean_val"] for r in rows)
    winner = min((r for r in rows if r["mean_val"] >= best - 0.005), key=lambda r: r["cost"])
    test = load_split(root, "Test", size=size, limit=profile.images(), progress=False)
    for r in winner["runs"]:
        cascade = CascadeModel(r["model"], second[r["seed"]]["model"])
        r["cascade_test"] = evaluate(cascade, test, inputs="rgb", batch_size=8,
                                     progress=False).covid["dice"]  # fmt: skip
        log(f"lab 05 stage 1 chosen [{winner['name']}] seed {r['seed']}: cascade test Dice "
            f"{r['cascade_test']:.3f}")  # fmt: skip
    for row in rows:
        for r in row["runs"]:
            r.pop("model")
    return {"candidates": rows, "winner": winner["name"],
            "stage2_val": [second[s]["val"] for s in seeds]}  # fmt: skip


def table(lab: str, result: dict[str, Any]) -> str:
    """Markdown: per candidate, the mean and lowest Val score and the seconds per training."""
    lines = [
        f"lab {lab}: Val = {result['candidates'][0]['runs'][0]['monitor']} of the kept model, "
        "mean (lowest) over seeds and trainings",
        "",
        "| candidate | Val mean (lowest) | s per training | chosen |",
        "| --- | --- | --- | --- |",
    ]
    for c in result["candidates"]:
        secs = [r["seconds"] for r in c["runs"]]
        chosen = "**yes**" if c["name"] == result["winner"] else ""
        lines.append(
            f"| {c['name']} | {c['mean_val']:.3f} ({c['min_val']:.3f}) | "
            f"{min(secs):.0f}-{max(secs):.0f} | {chosen} |"
        )
    winner = next(c for c in result["candidates"] if c["name"] == result["winner"])
    lines += ["", "chosen recipe, test Dice per training (seeds in order):"]
    for label in dict.fromkeys(r["label"] for r in winner["runs"]):
        d = [f"{r['dice']:.3f}" for r in winner["runs"] if r["label"] == label]
        lines.append(f"- {label}: {' / '.join(d)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="+", default=sorted(CANDIDATES), choices=sorted(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="select_smoke.json")
    parser.add_argument(
        "--only", nargs="+", help="candidate names to train (with the current recipe); default all"
    )
    parser.add_argument(
        "--lung-stage", action="store_true", help="choose lab 05's stage 1 instead (epochs, images)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = resolve_data("phantom", get_profile("smoke").phantom_n, progress=False)
    out: dict[str, Any] = {"seeds": args.seeds, "threads": args.threads, "labs": {}}
    if args.lung_stage:
        out["lung_stage"] = select_lung_stage(args.seeds, root)
        for c in out["lung_stage"]["candidates"]:
            print(f"| {c['name']} | {c['mean_val']:.3f} ({c['min_val']:.3f}) | "
                  f"{c['mean_lung']:.3f} |")  # fmt: skip
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1, default=str)
        return
    for lab in args.labs:
        t0 = time.perf_counter()
        result = select(lab, args.seeds, root, only=args.only)
        print(table(lab, result), flush=True)
        result["seconds"] = time.perf_counter() - t0
        out["labs"][lab] = result
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
