"""The grader's side of the worker processes (``labkit.grade.worker``) for one student.

``run_hidden_tests`` and ``execute`` write a worker's job, run it in the student's
``Workspace`` and read back its results; the verdicts are reached by ``judge``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat

from labkit.checks.registry import EXERCISE_MODULES_ENV_VAR
from labkit.course.kernel import inject_parameters
from labkit.grade.hidden import describe_test
from labkit.grade.judge import ExerciseResult, ExerciseSpec, LabSpec, judge
from labkit.grade.submissions import Options, read_regular_file
from labkit.grade.wire import MAX_TEXT, read_observations
from labkit.grade.worker import BOOT
from labkit.grade.workspace import Workspace

RUN_STATUSES = ("ok", "timeout", "error")  # what an executed notebook's status can be
BOOT_SECONDS = 180.0  # for a worker to start Python and import torch on a busy machine


def run_hidden_tests(nb: Any, cells: dict, lab: LabSpec, options: Options, ws: Workspace) -> list:
    todo = [s for s in lab.specs if s.exercise.id in cells]
    out = ws.dir / "probe"
    items = []
    for i, spec in enumerate(todo):
        lib = ws.exercise_lib(f"lib-{i:02d}", spec.absent) if spec.absent else ws.lib
        items.append(
            {
                "id": spec.exercise.id,
                "source": str(cells[spec.exercise.id].source),  # parsed in the worker only
                "out": str(out / f"{i:02d}"),
                "lib": str(lib),
            }
        )
    job = {
        "lab": lab.lab,
        "exercises": items,
        "cells": [str(c.source) for c in nb.cells if c.cell_type == "code"],
        "lab_imports": lab.prelude,
        "lab_exercises": [s.exercise.id for s in lab.specs],
        "hidden_rel": lab.hidden_rel,
        "exercise_modules": [
            n.strip() for n in ws.env.get(EXERCISE_MODULES_ENV_VAR, "").split(",") if n.strip()
        ],
        "exercise_timeout": options.exercise_timeout,
        "seed": lab.seed,
        "sandboxed": ws.sandbox,  # then the boot process may kill every process but itself
    }
    boot = str(ws.lib / "labkit" / "grade" / "probe_boot.py")
    budget = len(todo) * (options.exercise_timeout + 10) + 30
    run = ws.run("probe", [boot], job, budget, cwd=out, boot_timeout=BOOT_SECONDS)
    states: dict[str, dict] = {}
    for line in run.lines:  # from the boot process (no labkit, no student code in it)
        try:
            state = json.loads(line)
            states[str(state["id"])] = state
        except (ValueError, TypeError, KeyError):
            continue
    results = []
    for spec in lab.specs:
        ex = spec.exercise
        if ex.id not in cells:
            results.append(
                ExerciseResult(
                    ex.id,
                    ex.title,
                    float(ex.points),
                    "missing",
                    f"the exercise cell of {ex.id} is not in your notebook (it was deleted, or "
                    "its cell metadata was removed); nothing could be graded",
                )  # fmt: skip
            )
            continue
        i = todo.index(spec)
        state = states.get(ex.id, {})
        results.append(_exercise_result(spec, state, out / f"{i:02d}", run.finished, options))
    return results


def _exercise_result(
    spec: ExerciseSpec, state: dict, stem: Path, finished: bool, options: Options
) -> ExerciseResult:
    ex = spec.exercise
    base = ExerciseResult(ex.id, ex.title, float(ex.points), "crashed", tests=len(spec.tests))
    if state.get("state") == "timeout":
        data, _ = read_regular_file(stem.with_suffix(".progress"), 32)  # the student's process
        try:
            number = int(data or b"")
            where = f" on {describe_test(spec.tests[number], number + 1)}" if number >= 0 else ""
        except (ValueError, IndexError):
            where = ""
        base.status = "timeout"
        base.message = (
            f"your code did not finish within {options.exercise_timeout:g} s{where} "
            "(an endless loop?)"
        )
        return base
    if state.get("state") != "done":  # the boot process saw it crash, or never reported it
        why = "it took too long" if not finished else "the process running it stopped"
        base.message = (
            f"your code could not be tested: {why} (exit code {state.get('code', '?')}); "
            "does it exit Python, use too much memory or write huge files?"
        )
        return base
    try:
        meta = read_observations(stem.with_suffix(".npz"), str(state.get("sha256", "")))
    except FileNotFoundError:
        why = "it took too long" if not finished else "the process running it stopped"
        base.message = (
            f"your code could not be tested: {why} (exit code {state.get('code', '?')}); "
            "does it exit Python, use too much memory or write huge files?"
        )
        return base
    except Exception as err:  # noqa: BLE001 (unreadable results are the student's process' doing)
        base.message = f"the grader could not read your code's results ({type(err).__name__})"
        return base
    try:
        return judge(spec, meta)
    except Exception as err:  # noqa: BLE001
        base.message = f"the grader could not compare your code's results ({err})"[:300]
        return base


def execute(nb: Any, lab: LabSpec, options: Options, ws: Workspace) -> dict:
    """Run the notebook in the sandbox; its status from the worker's answer and exit code."""
    work = ws.dir / "work"
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in copy.cells:  # stored outputs are never run, read or trusted
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    data, ro = None, ()
    if lab.needs_data:
        data = options.data
        if options.data == "phantom":
            if lab.phantom_root is not None:
                shutil.copytree(lab.phantom_root, work / ".labkit-cache" / lab.phantom_root.name)
        elif options.data:
            data = str(Path(options.data).resolve())
            ws.env["LABKIT_DATA"] = data
            ro = (Path(data),)  # a real dataset: shared, read-only in the sandbox
    try:
        inject_parameters(copy, {"PROFILE": options.profile, "DATA": data})
    except ValueError:
        pass  # no parameters cell: LABKIT_PROFILE still applies
    path = work / "submission.ipynb"
    nbformat.write(copy, path)
    job = {
        "notebook": str(path),
        "cwd": str(work),
        "timeout": options.timeout,
        "kernel_env": {**ws.env, "PYTHONPATH": str(ws.lib)},
        "max_output_bytes": options.max_output_bytes,
        "pgid_file": str(ws.dir / "run" / "kernel.pgid"),
    }
    argv = ["-c", BOOT, str(ws.lib), "execute"]
    run = ws.run("execute", argv, job, options.timeout + BOOT_SECONDS, cwd=work, ro=ro)
    if not run.finished:
        return {"status": "timeout", "error": f"stopped after {options.timeout:g} s", "cell": -1}
    if run.code == 0 and run.lines:
        try:
            status = json.loads(run.lines[-1])
        except ValueError:
            status = {}
        if isinstance(status, dict) and status.get("status") in RUN_STATUSES:
            return _clean_status(status)
    return {
        "status": "error",
        "error": f"the notebook runner stopped (exit code {run.code}): {ws.log_tail('execute')}"[
            :MAX_TEXT
        ],
        "cell": -1,
    }


def _clean_status(status: dict) -> dict:
    """Only the fields the feedback shows, with their types checked (defence in depth)."""
    clean: dict[str, Any] = {"status": status["status"]}
    for key, kind in (("cell", int), ("cells", int), ("seconds", (int, float))):
        if isinstance(status.get(key), kind) and not isinstance(status.get(key), bool):
            clean[key] = status[key]
    for key in ("error", "cell_source"):
        if isinstance(status.get(key), str):
            clean[key] = status[key][:MAX_TEXT]
    tb = status.get("traceback")
    if isinstance(tb, list):
        clean["traceback"] = [str(t)[:MAX_TEXT] for t in tb[:40]]
    clean["output_truncated"] = bool(status.get("output_truncated"))
    clean.setdefault("cell", -1)
    return clean
