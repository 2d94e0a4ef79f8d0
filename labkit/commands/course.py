"""``labkit course run``: execute every lab's solution notebook; write HTML and results.md.
``labkit course plan``: per lab, the work a profile asks for and an estimate of its time."""

from __future__ import annotations

import argparse

from labkit.commands.args import check_data_path, course_root, lab_list, positive_float

_SOURCE_HELP = (
    "folder of NN_name.py lab sources (default: solutions/ in the course's root, found from "
    "here upwards)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "course",
        help="run the whole course (all labs, in order)",
        description="run: execute every lab's solution notebook and collect the results; "
        "plan: before running a profile, estimate each lab's training time and memory.",
        epilog="examples:\n  labkit course run --data phantom\n  labkit course plan --gpu t4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    course_sub = p.add_subparsers(dest="course_command", metavar="<subcommand>")
    r = course_sub.add_parser(
        "run",
        help="execute the solution notebooks on a Jupyter kernel; write notebooks, HTML, "
        "results.md",
        description="Run every lab's solution notebook, in order, on a fresh Jupyter kernel, "
        "and collect each trained model's scores beside the reports' figures. A failing lab "
        "is reported and the run goes on.",
        epilog="example: labkit course run --data phantom --profile smoke --out runs/course",
    )
    r.add_argument(
        "--data",
        default=None,
        help="'phantom' or the COVID-QU-Ex root "
        "(default: $LABKIT_DATA, kagglehub cache, else phantom)",
    )
    r.add_argument(
        "--ct-data",
        default=None,
        help="lab 07's CT tree (Kaggle COVID-19 CT scans) or 'phantom' "
        "(default: $LABKIT_CT_DATA, kagglehub cache, else the phantom CT set)",
    )
    r.add_argument(
        "--profile",
        default=None,
        help="smoke, practical or full (default: $LABKIT_PROFILE or smoke)",
    )
    r.add_argument("--out", default="runs/course", help="output folder (default: runs/course)")
    r.add_argument(
        "--labs", type=lab_list, default=None, help="lab numbers, e.g. 02,03 (default: all)"
    )
    r.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="seconds allowed per lab, the whole notebook (default: 3600 in smoke, no limit "
        "in full); the lab's trainings stop by themselves before 80%% of it",
    )
    r.add_argument("--source", default=None, help=_SOURCE_HELP)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(handler=run)
    pl = course_sub.add_parser(
        "plan",
        help="per lab: images x epochs, counted training FLOPs, estimated minutes and GPU "
        "memory on a device (estimates)",
        description="Before you run a profile: how much training each lab asks for, and an "
        "ESTIMATE of its time and GPU memory on a device (counted FLOPs at an assumed share "
        "of the device's speed; not a measurement).",
        epilog="example: labkit course plan --profile practical --gpu t4",
    )
    pl.add_argument("--profile", default=None, help="smoke, practical or full")
    pl.add_argument(
        "--gpu", default="t4", help="t4, l4, a100, h100 or cpu (default: t4, a free Colab GPU)"
    )
    pl.add_argument(
        "--labs", type=lab_list, default=None, help="lab numbers, e.g. 02,03 (default: all)"
    )
    pl.add_argument("--source", default=None, help=_SOURCE_HELP)
    pl.set_defaults(handler=plan)
    p.set_defaults(handler=lambda args: p.print_help() or 0)


def run(args: argparse.Namespace) -> int:
    from labkit.course.runner import run_course

    check_data_path(args.data)  # a wrong folder fails now, not in every lab
    labs = args.labs
    runs = run_course(
        source=args.source or course_root() / "solutions",
        out=args.out,
        data=args.data,
        ct_data=args.ct_data,
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


def plan(args: argparse.Namespace) -> int:
    from labkit.course.build import find_labs
    from labkit.course.plan import CPU_PRACTICAL_MIN, DEVICES, describe_plan, plan_lab
    from labkit.runs import get_profile

    gpu = str(args.gpu).strip().lower()
    if gpu not in DEVICES:
        raise ValueError(
            f"--gpu: unknown device {args.gpu!r}; expected one of {', '.join(DEVICES)}"
        )
    prof = get_profile(args.profile)
    sources = find_labs(args.source or course_root() / "solutions", args.labs)
    print(
        f"labkit course plan: profile {prof.name}, device {gpu}. Every time and memory figure "
        "is an ESTIMATE (counted FLOPs at an assumed share of the device's peak; README, "
        "'Run profiles'), not a measurement."
    )
    total = 0.0
    for src in sources:
        p = plan_lab(prof, src.stem[:2], gpu)
        total += p["minutes"]
        print(describe_plan(p))
    if gpu == "cpu" and total > CPU_PRACTICAL_MIN:
        print(f"all labs: about {total / 60:.0f} h of training on a CPU (an estimate): use a GPU")
    else:
        print(f"all labs: about {total:.0f} min of training on {gpu} (an estimate)")
    return 0
