"""``labkit train --resume``: the same run or none. A new run records its command and
settings in ``--out``; a resume must repeat them (else it would silently change course: a
30-epoch cosine decay cut off at the default 10, or another model's weights loaded)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from labkit.commands.args import CommandError

RUN_RECORD = "run.json"  # in --out: the command and settings a --resume must repeat


def run_settings(p: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What makes two invocations the same run: the model, data, sizes and every training
    setting (not where it runs or whether bars are shown), as one flat JSON-ready dict."""
    config = p["config"].to_dict()
    for key in ("device", "progress", "out_dir", "time_budget_min"):
        config.pop(key, None)
    run = dict(model=p["model"], profile=p["profile"].name, data=args.data, size=p["size"],
               inputs=p["inputs"], target=p["target"], train_images=p["train_images"])  # fmt: skip
    return json.loads(json.dumps({**config, **run}))  # the types a record read back has


def same_run(p: dict[str, Any], args: argparse.Namespace, out: Path, write: bool) -> str:
    """A new run records its command and settings in ``out/run.json``; ``--resume`` must give
    the same settings (else the run would silently change course: a 30-epoch cosine decay
    cut off at the default 10, or another model's weights loaded). Returns the command to
    repeat, without ``--resume``.

    Raises:
        CommandError: ``--resume`` with settings other than the interrupted run's.
    """
    now = run_settings(p, args)
    typed = getattr(args, "argv", None) or ["train", "--model", p["model"]]
    argv = [a for a in typed if a != "--resume"]
    command = "labkit " + " ".join(map(shlex.quote, argv))
    record = out / RUN_RECORD
    if not args.resume:
        if write:
            out.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"command": command, "settings": now}, indent=1))
        return command
    try:
        old = json.loads(record.read_text())
        before, command = old["settings"], old["command"]
    except (OSError, ValueError, KeyError, TypeError):
        return command  # a run from before run.json: nothing to compare with
    changed = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    if changed:
        diffs = ", ".join(f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise CommandError(
            f"--resume: these options differ from the interrupted run's ({diffs}); "
            f"continue it with the same options: `{command} --resume`"
        )
    return command
