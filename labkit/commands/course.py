"""``labkit course run``: execute every lab's solution notebook; write HTML and results.md."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("course", help="run the whole course (all labs, in order)")
    course_sub = p.add_subparsers(dest="course_command", metavar="<subcommand>")
    r = course_sub.add_parser(
        "run",
        help="execute the solution notebooks on a Jupyter kernel; write notebooks, HTML, "
        "results.md",
    )
    r.add_argument(
        "--data",
        default=None,
        help="'phantom' or the COVID-QU-Ex root "
        "(default: $LABKIT_DATA, kagglehub cache, else phantom)",
    )
    r.add_argument(
        "--profile", default=None, help="smoke or full (default: $LABKIT_PROFILE or smoke)"
    )
    r.add_argument("--out", default="runs/course", help="output folder (default: runs/course)")
    r.add_argument("--labs", default=None, help="comma-separated lab numbers (default: all)")
    r.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed per cell (default: 900 in smoke, no limit in full)",
    )
    r.add_argument("--source", default="solutions", help="folder of NN_name.py lab sources")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(handler=run)
    p.set_defaults(handler=lambda args: p.print_help() or 0)


def run(args: argparse.Namespace) -> int:
    from labkit.course.run import run_course

    labs = [x.strip() for x in args.labs.split(",") if x.strip()] if args.labs else None
    runs = run_course(
        source=args.source,
        out=args.out,
        data=args.data,
        profile=args.profile,
        labs=labs,
        timeout=args.timeout,
        progress=not args.no_progress,
    )
    failed = [r for r in runs if not r.ok]
    total = sum(r.seconds for r in runs)
    print(
        f"{len(runs) - len(failed)} of {len(runs)} lab(s) ran in {total:.0f} s; "
        f"results: {args.out}/results.md"
    )
    for r in failed:
        print(f"FAILED lab {r.lab} ({r.stem}): {r.error}")
    return 1 if failed else 0
