"""``labkit build [--check]``: student and solution notebooks from ``solutions/NN_name.py``."""

from __future__ import annotations

import argparse

from labkit.commands.args import course_root, lab_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="generate notebooks/*.ipynb (students) and solutions/*.ipynb from solutions/*.py",
        description="Write the student notebooks (notebooks/NN_name.ipynb, exercises blanked) "
        "and the solution notebooks (solutions/NN_name.ipynb) from the lab sources "
        "solutions/NN_name.py. Works from any folder inside the course.",
        epilog="example: labkit build --check   (exit 1 when a notebook is out of date)",
    )
    p.add_argument(
        "--source",
        default=None,
        help="folder of NN_name.py lab sources (default: solutions/ in the course's root, "
        "found from here upwards)",
    )
    p.add_argument(
        "--notebooks",
        default=None,
        help="folder for student notebooks (default: notebooks/ beside --source's folder)",
    )
    p.add_argument(
        "--labs", type=lab_list, default=None, help="lab numbers, e.g. 02,03 (default: all)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a generated notebook is missing or out of date",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labkit.course.build import build

    source = Path(args.source) if args.source else course_root() / "solutions"
    notebooks = Path(args.notebooks) if args.notebooks else source.parent / "notebooks"
    report = build(source, notebooks, labs=args.labs, check=args.check)
    args.source = source
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
