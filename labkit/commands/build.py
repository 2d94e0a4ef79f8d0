"""``labkit build [--check]``: student and solution notebooks from ``solutions/NN_name.py``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="generate notebooks/*.ipynb (students) and solutions/*.ipynb from solutions/*.py",
    )
    p.add_argument("--source", default="solutions", help="folder of NN_name.py lab sources")
    p.add_argument("--notebooks", default="notebooks", help="folder for student notebooks")
    p.add_argument("--labs", default=None, help="comma-separated lab numbers (default: all)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a generated notebook is missing or out of date",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from labkit.course.build import build

    labs = [x.strip() for x in args.labs.split(",") if x.strip()] if args.labs else None
    report = build(args.source, args.notebooks, labs=labs, check=args.check)
    if not report.labs:
        print(f"no lab sources (NN_name.py) in {args.source}")
    for path in report.written:
        print(f"wrote {path}")
    for path in report.stale:
        print(f"stale or missing: {path}")
    for path in report.orphans:
        print(f"no source for generated notebook: {path}")
    if args.check:
        if not report.ok:
            print("generated notebooks are out of date: run `labkit build`")
            return 1
        print(f"{len(report.labs)} lab(s): generated notebooks are up to date")
    else:
        print(f"{len(report.labs)} lab(s) built, {len(report.written)} file(s) changed")
    return 0
