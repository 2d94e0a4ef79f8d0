"""How long `labkit grade` takes for a class: N smoke-profile submissions of one lab.

    python benchmarks/bench_grade.py --lab 01 --n 30 --jobs 2
    python benchmarks/bench_grade.py --lab 00 --n 30 --jobs 2   # the fixture lab (tests)
    python benchmarks/bench_grade.py --lab 02 --n 6 --jobs 2 --sandbox both  # its overhead

The submissions cycle through the lab's solution notebook, its student notebook and a
partly solved one (the first half of the exercises), as `labkit build` writes them; each is
executed on its own kernel (smoke profile, phantom data; ``--no-run``: hidden tests only) and
hidden-tested. ``--sandbox both`` grades the same class with bubblewrap and without
(``--require-sandbox`` / ``--no-sandbox``), alternating rounds, and prints the sandbox's
overhead per submission. Prints the wall time, seconds per submission and the statuses;
asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="01")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--sandbox", choices=("on", "off", "both"), default="on")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per mode (alternating)")
    parser.add_argument("--no-run", action="store_true", help="hidden tests only")
    args = parser.parse_args()

    from labkit.course.build import build_lab, dumps, exercise_cells, find_labs

    lab = f"{int(args.lab):02d}"
    demo = lab == "00"
    source_dir = FIXTURES / "labs" if demo else REPO / "solutions"
    (source,) = find_labs(source_dir, [lab])
    work = Path(tempfile.mkdtemp(prefix=f"bench-grade-{lab}-"))
    _, student, solution = build_lab(source, work / "build")
    partial = copy.deepcopy(student)
    ids = list(exercise_cells(solution))
    for exercise_id in ids[: max(1, len(ids) // 2)]:
        exercise_cells(partial)[exercise_id].source = exercise_cells(solution)[exercise_id].source
    kinds = [("solution", solution), ("student", student), ("partial", partial)]
    subs = work / "submissions"
    subs.mkdir()
    for i in range(args.n):
        name, nb = kinds[i % len(kinds)]
        (subs / f"s{i:02d}_{name}.ipynb").write_text(dumps(nb), encoding="utf-8")

    env = dict(os.environ, LABKIT_PROFILE="smoke")
    command = [sys.executable, "-m", "labkit.cli", "grade", str(subs), "--lab", lab]
    command += ["--jobs", str(args.jobs)]
    command += ["--timeout", str(args.timeout), "--source", str(source_dir), "--no-progress"]
    if demo:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
        env["LABKIT_EXERCISE_MODULES"] = "demo_exercises"
        command += ["--hidden", str(FIXTURES / "grade" / "hidden")]
    if args.no_run:
        command.append("--no-run")
    modes = ["on", "off"] if args.sandbox == "both" else [args.sandbox]
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            flag = "--require-sandbox" if mode == "on" else "--no-sandbox"
            out = work / f"out-{mode}"
            seconds, summary, statuses = _grade([*command, "--out", str(out), flag], env, args.n)
            times[mode].append(seconds)
            print(summary)
            print(
                f"lab {lab}, sandbox {mode}: {args.n} submissions, --jobs {args.jobs}, "
                f"{os.cpu_count()} CPU(s): {seconds:.0f} s wall ({seconds / args.n:.1f} s per "
                f"submission); statuses {dict(statuses)}"
            )
    if len(modes) == 2:
        on, off = min(times["on"]), min(times["off"])
        print(
            f"sandbox overhead (best of {args.rounds}): {(on - off) / args.n:+.2f} s per "
            f"submission ({100 * (on - off) / off:+.1f} %)"
        )
    print(f"outputs in {work}")


def _grade(command: list[str], env: dict, n: int) -> tuple[float, str, Counter]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n")
        raise SystemExit(f"labkit grade exited {done.returncode}")
    lines = done.stdout.splitlines()
    statuses = Counter(line.split()[2] for line in lines[1 : n + 1] if line.strip())
    summary = next((ln for ln in lines if "submission(s) graded in" in ln), "")
    return seconds, summary, statuses


if __name__ == "__main__":
    main()
