"""The ``labkit`` command line: ``labkit <command> [options]``.

Each command group lives in its own small module under ``labkit/commands/`` and exposes
``register(subparsers)``; handlers import torch and friends lazily so ``labkit --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from labkit import __version__
from labkit.commands.args import CommandError

# Command modules in the order ``labkit --help`` lists them.
COMMAND_MODULES = (
    "info",
    "data",
    "train",
    "evaluate",
    "build",
    "course",
    "grade",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="COVID-19 infection segmentation course kit (COVID-QU-Ex).",
    )
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(f"labkit.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    from labkit.commands.grade import action_help  # light: argparse only

    if (text := action_help(argv)) is not None:
        print(text)
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument (argparse printed it): its code
        return int(done.code or 0)
    args.argv = argv  # as typed: `labkit train --resume` repeats it
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except (CommandError, ValueError, FileNotFoundError) as err:
        print(f"labkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
