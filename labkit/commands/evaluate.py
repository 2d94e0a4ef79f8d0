"""labkit evaluate CHECKPOINT [--data ROOT|phantom] [--split test] [--out FILE]

Scores a model saved by labkit train on a split. The checkpoint knows its model and the
inputs it was trained on, so nothing else is needed. Prints a table per class and can
write the same JSON fields as labkit train's metrics.json.

example:
  labkit evaluate runs/unet/best.pt --data phantom --out runs/unet/test.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from labkit.commands.args import CommandError, data_root, fraction, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    usage, _, description = __doc__.partition("\n\n")
    p = sub.add_parser(
        "evaluate",
        help="score a checkpoint on a split: per-class table and metrics JSON",
        usage=usage,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint", help="a .pt file written by `labkit train` (e.g. runs/unet/best.pt)"
    )
    p.add_argument(
        "--data",
        default=None,
        help="dataset root or 'phantom' (default: $LABKIT_DATA, kagglehub cache, phantom)",
    )
    p.add_argument(
        "--split",
        default="test",
        type=str.lower,
        choices=("train", "val", "test"),
        help="train, val or test (default: test)",
    )
    p.add_argument("--out", default=None, help="write the metrics JSON here")
    p.add_argument(
        "--profile",
        default=None,
        help="run profile: how many images (default: $LABKIT_PROFILE or smoke)",
    )
    p.add_argument(
        "--size", type=positive_int, default=None, help="image side in pixels (default: as trained)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=16, help="images per step (default 16)"
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        default=0.5,
        help="a pixel counts as infection when its probability is at least this (default 0.5)",
    )
    p.add_argument(
        "--empty-score",
        type=fraction,
        default=None,
        help="score empty-truth images (default: exclude them)",
    )
    p.add_argument("--device", default=None, help="cuda, mps, cpu or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write strict JSON (NaN -> null) atomically: a temporary file, then a rename."""
    from labkit.evaluation import jsonable

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def metrics_record(
    model_name: str, result: Any, history: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    """The metrics.json dict both commands write: headline scores first, then details."""
    history = history or {}
    record: dict[str, Any] = {"model": model_name}
    record.update(result.to_dict())
    record["epochs"] = len(history.get("epoch", []))
    record["best_epoch"] = history.get("best_epoch")
    record["stopped_reason"] = history.get("stopped_reason")
    record["train_seconds"] = history.get("train_seconds")
    record.update(extra)
    record["history"] = history
    return record


def run(args: argparse.Namespace) -> int:
    from labkit.data import load_split
    from labkit.evaluation import evaluate
    from labkit.runs import get_profile
    from labkit.train.checkpoint import load_model

    profile = get_profile(args.profile)
    progress = not args.no_progress
    model = load_model(args.checkpoint, device=args.device)
    info = model.labkit_checkpoint
    trained = info.get("data") or {}
    size = args.size if args.size is not None else trained.get("size")
    if not size:
        raise CommandError(f"{args.checkpoint} does not record its image size; pass --size")
    if (trained.get("target") or "infection") != "infection":
        raise CommandError(
            f"{args.checkpoint} was trained on {trained['target']!r} masks; evaluate scores infection"
        )
    root = data_root(args.data, profile.phantom_n, progress=progress)
    split = {"train": "Train", "val": "Val", "test": "Test"}.get(args.split.lower())
    if split is None:
        raise CommandError(f"--split must be train, val or test, got {args.split!r}")
    data = load_split(root, split, size=size, limit=profile.images(), progress=progress)
    result = evaluate(
        model, data, batch_size=args.batch_size, device=args.device, threshold=args.threshold,
        empty_score=args.empty_score, keep_predictions=False, progress=progress,
    )  # fmt: skip
    name = model.labkit_spec["name"]
    print(f"{name} from {args.checkpoint} (epoch {info.get('epoch')}) on {root}")
    print(result.table())
    if args.out:
        record = metrics_record(
            name, result, info.get("history"), checkpoint=str(args.checkpoint),
            profile=profile.name, size=size, data=str(root),
            inputs=trained.get("inputs"), loss=(info.get("config") or {}).get("loss"),
        )  # fmt: skip
        print(f"wrote {write_json(args.out, record)}")
    return 0
