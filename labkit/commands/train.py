"""labkit train --model NAME [--data ROOT|phantom] [--profile smoke|practical|full] [--out DIR]

Trains one of the labs' models on the Train split, keeps the epoch that scores best on Val,
and scores the Test split (never seen in training or in choosing the epoch). Writes
DIR/best.pt, DIR/last.pt (everything needed to continue: --resume), DIR/metrics.json and
DIR/training_curves.png.

Each model starts from the settings of the student report it comes from; the profile
changes some of them (smoke: a small, fixed amount of CPU work on 64-pixel images;
practical: sized for a free Colab GPU; full: the report's own settings), and your options
change them again. The run prints every setting that differs from the report, and why,
and records them in metrics.json. The profile's time limit is only a safety net: if it
stops a run early, the run says so.

examples:
  labkit train --model unet --data phantom
  labkit train --model unet --data phantom --resume     (continue an interrupted run)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from labkit.commands.args import (
    CommandError,
    check_data_path,
    data_root,
    non_negative_int,
    positive_float,
    positive_int,
)
from labkit.commands.resume import same_run
from labkit.runs import LABS, get_profile, lab_of_model, settings_for_model, stop_warning


def train_models() -> tuple[str, ...]:
    """``labkit train --model``'s names: each lab's models (``labkit.runs.LABS``), in order."""
    return tuple(model for entry in LABS.values() for model in entry.models)


AUGMENTS = ("none", "flips", "report003")


def register(sub: argparse._SubParsersAction) -> None:
    usage, _, description = __doc__.partition("\n\n")
    p = sub.add_parser(
        "train", help="train a lab's model, report the test split", usage=usage,
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", required=True, choices=train_models(), metavar="NAME",
                   help=f"one of: {', '.join(train_models())}")  # fmt: skip
    p.add_argument(
        "--data",
        default=None,
        help="dataset root or 'phantom' (default: $LABKIT_DATA, kagglehub cache, phantom)",
    )
    p.add_argument(
        "--profile",
        default=None,
        help="smoke, practical or full (default: $LABKIT_PROFILE or smoke)",
    )
    p.add_argument("--out", default=None, help="output folder (default: runs/<model>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt (after Ctrl-C or a crash)",
    )
    p.add_argument("--epochs", type=positive_int, help="epochs to train (default: the profile's)")
    p.add_argument(
        "--size", type=positive_int, help="image side in pixels (default: the profile's)"
    )
    p.add_argument(
        "--loss",
        help="the loss, e.g. bce, bce_dice, dice, focal_jaccard (default: the report's; an "
        "unknown name lists them all)",
    )
    p.add_argument(
        "--lr", type=positive_float, help="learning rate, kept constant as in the reports"
    )
    p.add_argument("--batch-size", type=positive_int, help="images per training step")
    p.add_argument(
        "--encoder-weights",
        choices=("imagenet", "none"),
        help="pretrained models: start from ImageNet weights (needs the internet or a cached "
        "download) or from random weights",
    )
    p.add_argument(
        "--weights-path",
        help="pretrained models: a local file of encoder weights (for a machine offline)",
    )
    p.add_argument(
        "--covid-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train/validate on COVID-19 images only (test keeps all classes)",
    )
    p.add_argument(
        "--lung-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mask the input to the lungs (report 004)",
    )
    p.add_argument("--augment", choices=AUGMENTS, help="training augmentation")
    p.add_argument(
        "--time-budget",
        type=positive_float,
        help="minutes; stop early when the next epoch would end after it (default: the "
        "profile's safety limit)",
    )
    p.add_argument("--device", default=None, help="cuda, mps, cpu or auto (default: auto)")
    p.add_argument(
        "--seed", type=non_negative_int, default=0,
        help="random seed: the same seed gives the same run (default 0)",
    )  # fmt: skip
    p.add_argument(
        "--inputs",
        choices=("grey", "rgb", "grey+lung", "rgb+lung"),
        help="what the model sees: the grey X-ray, or it copied to 3 colour channels (rgb; "
        "pretrained encoders); +lung adds the lung mask as a channel (default: the report's)",
    )
    p.add_argument(
        "--target", choices=("infection",), default="infection", help="mask to learn (infection)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Report defaults, then the profile, then the flags: every setting of the run, the
    training's own as the ``TrainConfig`` ``fit`` takes (``"config"``).

    Raises:
        ValueError: an unknown model or a flag that does not apply to it.
    """
    from labkit.losses import LOSSES  # here: torch loads only when a command runs
    from labkit.train import TrainConfig

    d = settings_for_model(args.model)  # ValueError naming the valid models
    if args.loss is not None and args.loss not in LOSSES:
        raise ValueError(f"--loss: unknown loss {args.loss!r}; expected one of {', '.join(LOSSES)}")
    prof = get_profile(args.profile)
    if prof.cli_train is None:  # practical: the lab's sizes. (Smoke's lab changes exist
        prof = prof.for_lab(lab_of_model(args.model))  # for several models in one notebook.)
    inputs = args.inputs or d.inputs
    kwargs = dict(d.kwargs, in_channels=1 + 2 * inputs.startswith("rgb") + inputs.endswith("+lung"))
    weights = args.encoder_weights or (
        "imagenet" if d.pretrained and prof.name != "smoke" else None
    )
    weights = None if weights in (None, "none") else weights
    if args.model == "cascade":  # weights go to both stages
        for stage in ("lung_kwargs", "infection_kwargs"):
            kwargs[stage] = dict(kwargs.get(stage, {}), encoder_weights=weights)
            if args.weights_path:
                raise ValueError("--weights-path is ambiguous for the cascade (two encoders)")
    elif weights or args.weights_path:
        if not d.pretrained:
            raise ValueError(
                f"--encoder-weights/--weights-path: {args.model!r} has no pretrained encoder"
            )
        kwargs.update(encoder_weights=weights, weights_path=args.weights_path)
    # departures from the report, each with its reason (labkit.runs); the notebooks use
    # the same Profile.recipe. A flag is the user's choice, not a departure.
    r = prof.recipe(d.key)
    flags = dict(epochs=args.epochs, lr=args.lr, loss=args.loss, time_budget_min=args.time_budget)
    flags["scheduler"] = args.lr  # --lr sets a constant lr, as in the reports
    kept = {key: why for key, why in r.departures.items() if flags.get(key) is None}
    departures = list(kept.values())
    if r.base_width is not None and "base_width" not in kwargs:
        kwargs["base_width"] = r.base_width  # the table's, or the profile's departure
    out = Path(args.out or Path("runs") / args.model)
    config = TrainConfig(
        epochs=_given(args.epochs, r.epochs), lr=_given(args.lr, r.lr),
        batch_size=_given(args.batch_size, prof.batch_size(d.batch_size)),
        loss=_given(args.loss, r.loss), optimizer=d.optimizer, weight_decay=d.weight_decay,
        grad_clip=d.grad_clip, patience=d.patience, deep_supervision=d.deep_supervision,
        time_budget_min=_given(args.time_budget, r.time_budget_min),
        scheduler=r.scheduler if "scheduler" in kept else None,  # full: None anyway
        seed=args.seed, device=args.device, out_dir=out, progress=not args.no_progress,
    )  # fmt: skip
    return dict(
        model=args.model, kwargs=kwargs, profile=prof, inputs=inputs, target=args.target,
        size=_given(args.size, r.size), train_images=r.train_images, config=config,
        covid_only=d.covid_only if args.covid_only is None else args.covid_only,
        lung_only=d.lung_only if args.lung_only is None else args.lung_only,
        augment=args.augment or d.augment, settings=d, out=out, departures=departures,
        bn_momentum=r.bn_momentum,  # smoke: EfficientNet's batch norms (labkit.runs)
    )  # fmt: skip


def _build(build_model: Any, p: dict[str, Any], error: type[Exception]) -> Any:
    """The model, with weight problems said in the command's terms (one line, no traceback)."""
    try:
        return build_model(p["model"], **p["kwargs"])
    except RuntimeError as err:  # no internet for the ImageNet weights
        first = str(err).splitlines()[0]
        url = re.search(r"download (\S+) on a machine", str(err))
        where = f"download {url[1]} on a machine with internet, then " if url else ""
        raise error(
            f"--encoder-weights imagenet: {first}. {where}pass --weights-path FILE, or start "
            "from random weights with --encoder-weights none"
        ) from None
    except (ValueError, FileNotFoundError) as err:  # a bad weight file
        raise error(str(err).replace("weights_path:", "--weights-path:", 1)) from None


def _given(flag: Any, default: Any) -> Any:
    """The option's value when given (0 is a value, refused by its type), else ``default``."""
    return default if flag is None else flag


def run(args: argparse.Namespace) -> int:
    from labkit.data import load_split
    from labkit.device import pick_device, seed_everything
    from labkit.models import build_model, set_batch_norm_momentum
    from labkit.train import distributed

    p = plan(args)
    check_data_path(args.data)  # before --out is written to
    # under torchrun: join the process group, one GPU per process (labkit.train.distributed)
    ranks = distributed.join(pick_device(p["config"].device).type)
    device = distributed.rank_device(pick_device(p["config"].device), ranks)
    shown = p["config"].progress and ranks.is_main  # one set of bars and messages, from rank 0
    last = _out_folder(p, args.resume)  # before any work: a folder we cannot use fails now
    command = same_run(p, args, last.parent, write=ranks.is_main)  # --resume: same settings
    seed_everything(p["config"].seed)  # the model's initial weights depend on it too
    model = _build(build_model, p, CommandError)
    if p["bn_momentum"] is not None:
        set_batch_norm_momentum(model, p["bn_momentum"])
    root = data_root(args.data, p["profile"].phantom_n, progress=shown)
    classes = ["COVID-19"] if p["covid_only"] else None
    load = dict(size=p["size"], limit=p["profile"].images(), progress=shown)
    train = load_split(root, "Train", classes=classes, **dict(load, limit=p["train_images"]))
    val = load_split(root, "Val", classes=classes, **load)
    test = load_split(root, "Test", **load)  # all classes: false positives on healthy images
    if ranks.is_main:
        _say(
            f"{p['model']}: {p['profile'].name} profile, {p['size']} px, "
            f"{len(train)}/{len(val)}/{len(test)} train/val/test images from {root}"
        )
        if p["departures"]:  # students must know the run is not the report's setup
            _say(
                f"{p['profile'].name} profile: `labkit train` departs from the report "
                "(each change with its reason; --profile full keeps the report's settings):\n  - "
                + "\n  - ".join(p["departures"])
            )
    t0 = time.perf_counter()
    try:
        history, lung_history, config = _train(p, model, (train, val), device, last, args.resume)
    except FloatingPointError as err:  # NaN/inf loss: a message, not a traceback
        raise CommandError(str(err)) from None
    except KeyboardInterrupt:
        if ranks.is_main:
            _say(
                f"interrupted: {last} holds the last finished epoch; continue with "
                f"`{command} --resume`"
            )
        return 130
    if not ranks.is_main:  # rank 0 evaluates and writes metrics.json; the others are done
        return 0
    facts = dict(data=str(root), device=str(device), wall_seconds=time.perf_counter() - t0,
                 world_size=ranks.world_size)  # fmt: skip
    _report(p, test, history, lung_history, config, device, facts)
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _out_folder(p: dict[str, Any], resume: bool) -> Path:
    """``--out``'s last.pt, once the folder is writable and the run neither resumes nothing
    nor overwrites a run (else ``CommandError``, in the command's words)."""
    try:
        p["out"].mkdir(parents=True, exist_ok=True)
        (p["out"] / ".labkit-write-test").touch()
        (p["out"] / ".labkit-write-test").unlink()
    except OSError as err:
        raise CommandError(
            f"--out {p['out']}: cannot write there ({err.strerror or err}); expected a "
            "folder you can write to"
        ) from None
    last = p["out"] / "last.pt"
    if resume and (p["model"] == "cascade" or not last.is_file()):
        raise CommandError(
            "--resume: the cascade trains two stages and cannot resume; run it again"
            if p["model"] == "cascade"
            else f"--resume: there is no {last} to continue (run without --resume first)"
        )
    if not resume and last.is_file():  # never overwrite a run silently
        raise CommandError(
            f"--out {p['out']} already holds a run (last.pt): add --resume to continue it, or "
            "choose another --out"
        )
    return last


def _train(
    p: dict[str, Any], model: Any, data: tuple, device: Any, last: Path, resume: bool
) -> tuple[Any, Any, Any]:
    """Train (the cascade: its lung stage first): the history, the lung stage's, the config."""
    from labkit.data import Augment, BatchLoader
    from labkit.train import fit

    train, val = data
    aug = {"none": None, "flips": Augment.flips(), "report003": Augment.report003()}
    config = replace(p["config"], device=str(device))  # this process's device (torchrun)
    common = dict(inputs=p["inputs"], lung_only=p["lung_only"], device=device, seed=config.seed)

    def loaders(target: str) -> tuple[Any, Any]:
        return (
            BatchLoader(train, config.batch_size, shuffle=True, augment=aug[p["augment"]],
                        target=target, **common),
            BatchLoader(val, config.batch_size, shuffle=False, target=target, **common),
        )  # fmt: skip

    lung_history = None
    if p["model"] == "cascade":
        stage = p["settings"].stages["lung"]
        lung_history = _train_cascade_lungs(model, loaders("lung"), config, stage)
        if config.time_budget_min:  # the safety limit covers both stages together
            left = config.time_budget_min - lung_history.train_seconds / 60
            config = replace(config, time_budget_min=max(left, 1e-6))
    history = fit(model, *loaders(p["target"]), config, resume_from=last if resume else None)
    return history, lung_history, config


def _report(
    p: dict[str, Any], test: Any, history: Any, lung_history: Any, config: Any, device: Any,
    facts: dict[str, Any],
) -> None:  # fmt: skip
    """Score the best epoch on the test split; write metrics.json and the curves; say so."""
    import matplotlib.pyplot as plt

    from labkit.commands.evaluate import metrics_record, write_json
    from labkit.evaluation import evaluate
    from labkit.plots import plot_history
    from labkit.train.checkpoint import load_model

    best = p["out"] / "best.pt"
    if history.best_epoch is None:
        raise CommandError(
            f"no best checkpoint in {p['out']}: validation Dice was NaN in every epoch (no "
            "validation image with infection?)"
        )
    result = evaluate(
        load_model(best, device=device), test, batch_size=config.batch_size, device=device,
        target=p["target"], keep_predictions=False, progress=config.progress,
    )  # fmt: skip
    record = metrics_record(
        p["model"], result, history.to_dict(), checkpoint="best.pt", profile=p["profile"].name,
        size=p["size"], loss=config.loss, inputs=p["inputs"], target=p["target"],
        covid_only=p["covid_only"], lung_only=p["lung_only"], augment=p["augment"],
        batch_size=config.batch_size, lr=config.lr, seed=config.seed, device=facts["device"],
        data=facts["data"], model_kwargs=p["kwargs"], wall_seconds=facts["wall_seconds"],
        lung_history=lung_history.to_dict() if lung_history else None,
        departures=p["departures"], world_size=facts["world_size"],
        safety_stop=stop_warning(history, config.time_budget_min) or None,
    )  # fmt: skip
    write_json(p["out"] / "metrics.json", record)
    plt.close(plot_history(history, path=p["out"] / "training_curves.png"))
    print(result.table())
    for h in (lung_history, history):  # the safety limit cut a run short: say so, loudly
        if h is not None and stop_warning(h, config.time_budget_min):
            print(stop_warning(h, config.time_budget_min), file=sys.stderr)
    print(
        f"wrote {p['out'] / 'metrics.json'}, best.pt (epoch {history.best_epoch}), "
        "training_curves.png"
    )


def _train_cascade_lungs(model: Any, loaders: tuple, config: Any, d: dict[str, Any]) -> Any:
    """Stage 1 of the cascade: train its lung model on lung masks, then freeze it.

    ``d`` is report 003's lung stage (``REPORT_SETTINGS["003.cascade"].stages["lung"]``).
    """
    from labkit.train import fit
    from labkit.train.checkpoint import load_checkpoint

    budget = config.time_budget_min
    lung_cfg = replace(
        config, loss=d["loss"], epochs=min(config.epochs, d["epochs"]),
        patience=d["patience"], weight_decay=d["weight_decay"], out_dir=Path(config.out_dir) / "lung",
        time_budget_min=budget / 2 if budget else None,
    )  # fmt: skip
    history = fit(model.lung, *loaders, lung_cfg)
    best = Path(lung_cfg.out_dir) / "best.pt"
    if history.best_epoch is not None:  # the best lung epoch, not the last
        model.lung.load_state_dict(load_checkpoint(best)["state_dict"])
    model.freeze_lung = True
    model.lung.requires_grad_(False)
    model.labkit_spec["kwargs"]["freeze_lung"] = True  # a rebuilt cascade stays frozen
    return history
