"""``labkit grade``: mark a folder of students' notebooks with hidden tests (see labkit.grade)."""

from __future__ import annotations

import argparse
import sys
import time

from labkit.commands.args import check_data_path, positive_float, positive_int

EPILOG = """\
SUBMISSIONS is a folder of .ipynb files, one per student; the student id is the file name
(letters, digits, '.', '_' and '-' kept). With --per-student-folders it holds one folder per
student (the folder name is the id) with that student's notebook inside.
An id ending in '~' and 8 hex digits comes from a name with other characters: the digits start the SHA-256 of the name without .ipynb (`printf %s 'Ana María' | sha256sum` starts 8358ed27: Ana_Maria~8358ed27); its feedback page names the notebook file.

Students' code runs in a bubblewrap sandbox (no network, no view of your files, nothing
left running); without bubblewrap it runs with weaker isolation and a loud warning.

Writes OUT/gradebook.csv (student, lab, one column per exercise, score, max_score, status,
sandbox, seconds, detail) and OUT/feedback/<student>.md (rewritten on every run: use one OUT per lab).
Status: ok, error (a cell raised), timeout, invalid (not JSON, not a notebook, another lab,
no exercise cells), not-run (--no-run, for a notebook never run into OUT). Exercises are graded from their own cells with hidden
tests in fresh processes; marks never depend on what a notebook prints or stores.

Hidden inputs come from a secret: a fresh one per run, or --secret FILE, made once with
`labkit grade secret FILE` and given to every shard of a class (merge needs it too). Keep it
from students; make a new one for each grading.

Exercises of labs outside labkit: LABKIT_EXERCISE_MODULES=module[,module] (importable) and
--source with their NN_name.py sources; hidden tests of your own: --hidden DIR with labNN.py.

examples:
  labkit grade submissions/ --lab 02 --out graded-02
  labkit grade submissions/ --lab 02 --out graded-02 --manual graded-02/manual_marks.csv
"""


# `labkit grade merge ...` and `labkit grade secret FILE` are words in grade's positional
# arguments (a folder of submissions is one too), so argparse cannot give them their own
# --help: these texts are what `labkit grade merge --help` / `grade secret --help` print.
ACTION_HELP = {
    "merge": (
        "usage: labkit grade merge DIR_1 ... DIR_N --out DIR --secret FILE [--manual CSV]\n\n"
        "Join the shards of one class, graded with `labkit grade ... --shard K/N --secret FILE`,\n"
        "into one gradebook in --out. Needs the same secret file every shard was graded with;\n"
        "checks each shard's signature, ids and maxima.\n\n"
        "example:\n  labkit grade merge grades/1 grades/2 --out grades/all --secret class.secret"
    ),
    "secret": (
        "usage: labkit grade secret FILE\n\n"
        "Write a new random secret to FILE (readable by you only). The hidden tests' inputs come\n"
        "from it: give the same file to every shard of a class (--secret FILE) and to merge.\n\n"
        "example:\n  labkit grade secret class.secret"
    ),
}


def action_help(argv: list[str]) -> str | None:
    """The help of ``grade merge`` / ``grade secret`` when ``argv`` asks for it, else None."""
    if len(argv) >= 2 and argv[0] == "grade" and argv[1] in ACTION_HELP:
        if "-h" in argv or "--help" in argv:
            return ACTION_HELP[argv[1]]
    return None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grade",
        help="grade students' notebooks: hidden tests, gradebook.csv, feedback",
        description="Grade students' lab notebooks with labkit's hidden tests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "submissions",
        nargs="+",
        help="folder of submitted .ipynb files (or one notebook); or: merge DIR_1 ... DIR_N; "
        "or: secret FILE (make a secret file)",
    )
    p.add_argument("--lab", help="lab number, e.g. 01 (required unless merging)")
    p.add_argument("--out", help="output folder (gradebook.csv, feedback/); required to grade")
    p.add_argument(
        "--jobs", type=positive_int, default=1, help="students graded in parallel (default: 1)"
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="seconds allowed to run one whole notebook (default: measured first: 3 x the "
        "time the lab's solution notebook takes on this machine, plus 1 min)",
    )
    p.add_argument(
        "--test-timeout",
        type=positive_float,
        default=60.0,
        help="seconds allowed for one exercise's hidden tests (default: 60)",
    )
    p.add_argument(
        "--per-student-folders",
        action="store_true",
        help="SUBMISSIONS holds one folder per student (named by student id)",
    )
    p.add_argument(
        "--source",
        default="solutions",
        help="folder of the NN_name.py lab sources (default: solutions)",
    )
    p.add_argument(
        "--hidden",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of your own hidden tests (labNN.py); they replace labkit's for the "
        "exercises they cover (repeatable)",
    )
    p.add_argument(
        "--profile", default="smoke", help="run profile for the notebooks (default: smoke)"
    )
    p.add_argument(
        "--data",
        default="phantom",
        help="data for the notebooks: 'phantom' (a private copy per student, default) or a "
        "COVID-QU-Ex root (shared, read by every notebook)",
    )
    p.add_argument(
        "--no-run",
        action="store_true",
        help="only the hidden tests: do not execute the notebooks (status 'not-run'; a "
        "notebook run before into OUT keeps its status)",
    )
    _add_sandbox(p)
    p.add_argument(
        "--manual",
        metavar="CSV",
        help="merge hand-given marks for the written answers (OUT/manual_marks.csv, filled "
        "in); submissions graded before into OUT are not run again, only their marks change",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="grade only shard K of N (a fixed split by student id); join with "
        "`labkit grade merge DIR_1 ... DIR_N --out DIR`",
    )
    _add_limits(p)
    p.add_argument(
        "--secret",
        metavar="FILE",
        help="the secret the hidden inputs come from (default: a fresh one per run); needed "
        "with --shard and merge: make it once with `labkit grade secret FILE`",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _add_sandbox(p: argparse.ArgumentParser) -> None:
    """Whether students' code runs in bubblewrap."""
    sandbox = p.add_mutually_exclusive_group()
    sandbox.add_argument(
        "--require-sandbox",
        action="store_true",
        help="refuse to grade when bubblewrap cannot sandbox the students' code",
    )
    sandbox.add_argument(
        "--no-sandbox",
        action="store_true",
        help="do not use bubblewrap (only inside a throw-away container of your own)",
    )


def _add_limits(p: argparse.ArgumentParser) -> None:
    """What each submission's processes may use: memory and disk."""
    p.add_argument(
        "--max-memory",
        type=positive_float,
        default=8.0,
        metavar="GB",
        help="address space allowed to each process of a submission (default: 8 GiB)",
    )
    p.add_argument(
        "--max-ram",
        type=positive_float,
        default=6.0,
        metavar="GB",
        help="memory of each sandboxed process group in all, where cgroups can be made "
        "(as root; default: 6 GiB)",
    )
    p.add_argument(
        "--max-disk",
        type=positive_float,
        default=1.0,
        metavar="GB",
        help="what each process of a submission may write, in memory-backed folders "
        "(default: 1 GiB; /tmp and /dev/shm get 256 MiB each)",
    )


# what each limit may be (argparse already refused anything not a finite number above 0):
# a value far outside these either cannot be set (setrlimit overflows, bwrap's tmpfs takes
# no 0 bytes) or rounds to nothing, and every student would be blamed for it
_LIMITS = {  # attribute: (option, lowest, highest, unit)
    "timeout": ("--timeout", 1.0, 7 * 86400.0, "s"),
    "test_timeout": ("--test-timeout", 1.0, 86400.0, "s"),
    "max_memory": ("--max-memory", 0.25, 4096.0, "GB"),
    "max_ram": ("--max-ram", 0.25, 4096.0, "GB"),
    "max_disk": ("--max-disk", 0.01, 4096.0, "GB"),
}


def _check_limits(args: argparse.Namespace) -> None:
    for attr, (option, low, high, unit) in _LIMITS.items():
        value = getattr(args, attr, None)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{option}: expected {low:g} to {high:g} {unit}, got {value:g}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labkit.grade import Options, grade, write_summary
    from labkit.grade.secret import read_secret_file, write_secret_file
    from labkit.grade.shards import merge, parse_shard
    from labkit.runs import get_profile

    if args.submissions[0] == "secret":
        if len(args.submissions) != 2:
            raise ValueError("usage: labkit grade secret FILE")
        path = write_secret_file(args.submissions[1])
        print(
            f"secret written to {path} (readable by you only); grade every shard with --secret {path}"
        )
        return 0
    if not args.out:
        raise ValueError("--out is required (the folder for gradebook.csv and feedback/)")
    secret = read_secret_file(args.secret) if args.secret else None
    if args.submissions[0] == "merge":
        if args.manual:
            raise ValueError(
                "--manual: merge does not take hand-given marks; add them afterwards with "
                "`labkit grade SUBMISSIONS --lab NN --out DIR --manual CSV`"
            )
        if secret is None:
            raise ValueError("merge needs --secret FILE: the secret every shard was graded with")
        start = time.perf_counter()
        results = merge(args.submissions[1:], args.out, secret)
        write_summary(results, time.perf_counter() - start)
        print(
            f"gradebook: {Path(args.out) / 'gradebook.csv'}; feedback: {Path(args.out) / 'feedback'}/"
        )
        return 0
    if len(args.submissions) != 1:
        raise ValueError(
            f"give one SUBMISSIONS folder (or `merge DIR ...`), got {len(args.submissions)}"
        )
    if not args.lab:
        raise ValueError("--lab is required (e.g. --lab 02)")
    if args.shard and secret is None:
        raise ValueError(
            "--shard needs --secret FILE, the same file for every shard (make it once with "
            "`labkit grade secret FILE`)"
        )

    _check_limits(args)
    check_data_path(args.data)  # a wrong folder fails now, not in every notebook
    options = Options(
        source=Path(args.source),
        hidden_dirs=tuple(Path(h) for h in args.hidden),
        timeout=args.timeout,
        exercise_timeout=args.test_timeout,
        jobs=args.jobs,
        profile=get_profile(args.profile).name,
        data=args.data,
        per_student_folders=args.per_student_folders,
        run=not args.no_run,
        progress=not args.no_progress,
        manual=Path(args.manual) if args.manual else None,
        shard=parse_shard(args.shard) if args.shard else None,
        secret=secret,
        max_memory_bytes=int(args.max_memory * 2**30),
        max_disk_bytes=int(args.max_disk * 2**30),
        max_ram_bytes=int(args.max_ram * 2**30),
        sandbox="require" if args.require_sandbox else "off" if args.no_sandbox else "auto",
    )
    if args.timeout is not None and not args.no_run:
        print(
            f"note: --timeout {args.timeout:g} s is used as given; the lab's solution notebook "
            "is not timed against it (leave --timeout out to measure it first): a limit below "
            "its run time stops every submission, and the feedback then says the limit was yours",
            file=sys.stderr,
        )
    start = time.perf_counter()
    results = grade(args.submissions[0], args.lab, args.out, options)
    write_summary(results, time.perf_counter() - start)
    print(
        f"gradebook: {Path(args.out) / 'gradebook.csv'}; feedback: {Path(args.out) / 'feedback'}/"
    )
    failed = [r for r in results if r.detail.startswith("labkit grade failed")]
    return 1 if failed else 0
