"""The grader's side of the worker processes (``labkit.grade.worker``) for one student.

``run_hidden_tests`` and ``execute`` write a worker's job, run it in the student's
``Workspace`` and read back its results; the verdicts are reached by ``judge``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nbformat

from labkit.checks.registry import EXERCISE_MODULES_ENV_VAR
from labkit.course.kernel import inject_parameters
from labkit.grade.bounded import loads_bounded
from labkit.grade.hidden import describe_test
from labkit.grade.judge import (
    ExerciseResult,
    ExerciseSpec,
    ExerciseTests,
    LabSpec,
    judge,
    tests_for,
)
from labkit.grade.submissions import Options
from labkit.grade.wire import MAX_RESULT_BYTES, MAX_TEXT, read_observations
from labkit.grade.worker import BOOT
from labkit.grade.workspace import MAX_ANSWER_BYTES, Workspace
from labkit.train.limits import deadline_for

RUN_STATUSES = ("ok", "timeout", "error")  # what an executed notebook's status can be
BOOT_SECONDS = 180.0  # for a worker to start Python and import torch on a busy machine


def run_hidden_tests(
    nb: Any, cells: dict, lab: LabSpec, options: Options, ws: Workspace, student: str
) -> list:
    """Each exercise's hidden tests in a sandbox of its own; the verdicts reached here."""
    student_cells = [str(c.source) for c in nb.cells if c.cell_type == "code"]
    results = []
    for spec in lab.specs:
        ex = spec.exercise
        if ex.id not in cells:
            missing = spec.result("missing")
            missing.message = (
                f"the exercise cell of {missing.name} is not in your notebook (it was deleted, "
                "or its cell metadata was removed); nothing could be graded"
            )
            results.append(missing)
            continue
        tests = tests_for(lab, spec, student)
        world = ws.world(ws.copy_of_labkit(f"lib-{len(results):02d}", spec.absent))
        job = {
            "id": ex.id,
            "source": str(cells[ex.id].source),  # parsed in the worker only
            "lib": world.paths["lib"],
            "lab": lab.lab,
            "cells": student_cells,
            "lab_imports": lab.prelude,
            "lab_exercises": [s.exercise.id for s in lab.specs],
            "hidden_rel": lab.hidden_rel,
            "exercise_modules": [
                n.strip() for n in ws.env.get(EXERCISE_MODULES_ENV_VAR, "").split(",") if n.strip()
            ],
            "exercise_timeout": options.exercise_timeout,
            "max_bytes": MAX_RESULT_BYTES,
            "seed": tests.seed,  # this student's, for this exercise: nobody else's inputs
            "sandboxed": ws.sandbox,  # then the boot process may kill every process but itself
        }
        boot = f"{world.paths['lib']}/labkit/grade/probe_boot.py"
        run = ws.run(
            world,
            [boot],
            job,
            options.exercise_timeout + 30,
            boot_timeout=BOOT_SECONDS,
            max_answer_bytes=2 * MAX_RESULT_BYTES,
        )
        ws.log += run.stderr
        state: dict = {}
        if run.lines:  # from the boot process (no labkit, no student code in it)
            try:
                state = loads_bounded(run.lines[-1], max_bytes=3 * MAX_RESULT_BYTES, max_items=100)
            except ValueError:
                state = {}
        results.append(
            _exercise_result(
                spec, tests, state if isinstance(state, dict) else {}, run.finished, options
            )
        )
    return results


def _exercise_result(
    spec: ExerciseSpec, tests: ExerciseTests, state: dict, finished: bool, options: Options
) -> ExerciseResult:
    base = spec.result("crashed", tests=len(tests.tests))
    stopped = (
        f"your code could not be tested: {'it took too long' if not finished else 'the process running it stopped'} "
        f"(exit code {state.get('code', '?')}); does it exit Python, use too much memory or write huge files?"
    )
    if state.get("state") == "timeout":
        number = state.get("progress", -1)
        where = ""
        if isinstance(number, int) and 0 <= number < len(tests.tests):
            where = f" on {describe_test(tests.tests[number], number + 1)}"
        base.status = "timeout"
        base.message = (
            f"your code did not finish within {options.exercise_timeout:g} s{where} "
            "(an endless loop?)"
        )
        return base
    if state.get("state") != "done" or not state.get("data"):
        base.message = stopped
        return base
    if state.get("over"):
        base.message = "your code's results were too large to read (over 64 MB)"
        return base
    try:
        meta = read_observations(base64.b64decode(str(state["data"]), validate=True))
    except Exception as err:  # noqa: BLE001 (unreadable results are the student's process' doing)
        base.message = f"the grader could not read your code's results ({type(err).__name__})"
        return base
    try:
        return judge(spec, tests, meta)
    except Exception as err:  # noqa: BLE001
        base.message = f"the grader could not compare your code's results ({err})"[:300]
        return base


def execute(nb: Any, lab: LabSpec, options: Options, ws: Workspace) -> dict:
    """Run the notebook in the sandbox; its status from the worker's answer and exit code."""
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in copy.cells:  # stored outputs are never run, read or trusted
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    data, ro, env = None, {}, {}
    if lab.needs_data:
        data = options.data
        if options.data == "phantom":
            if lab.phantom_root is not None:  # read-only, where the notebook's cache looks
                ro[f"work/.labkit-cache/{lab.phantom_root.name}"] = lab.phantom_root
        elif options.data:
            ro["data"] = Path(options.data).resolve()  # a real dataset: shared, read-only
    world = ws.world(ws.copy_of_labkit("lib", {}), ro)
    if "data" in ro:
        data = env["LABKIT_DATA"] = world.paths["data"]
    try:
        inject_parameters(copy, {"PROFILE": options.profile, "DATA": data})
    except ValueError:
        pass  # no parameters cell: LABKIT_PROFILE still applies
    job = {
        "notebook": nbformat.writes(copy),
        "cwd": world.paths["work"],
        "timeout": options.timeout,
        "kernel_env": {**ws.world_env(world), **env, "PYTHONPATH": world.paths["lib"]},
        "max_output_bytes": options.max_output_bytes,
    }
    # The notebook's trainings stop by themselves before the grader's limit would kill the
    # kernel (a cut training says so; a killed cell only times out).
    job["kernel_env"].update(deadline_for(options.timeout))
    argv = ["-c", BOOT, world.paths["lib"], "execute"]
    run = ws.run(world, argv, job, options.timeout + BOOT_SECONDS)
    ws.log += run.stderr
    if not run.finished:
        return {"status": "timeout", "error": f"stopped after {options.timeout:g} s", "cell": -1}
    if run.code == 0 and run.lines:
        try:
            status = loads_bounded(run.lines[-1], max_bytes=MAX_ANSWER_BYTES, max_items=1000)
        except ValueError:
            status = {}
        if isinstance(status, dict) and status.get("status") in RUN_STATUSES:
            return _clean_status(status)
    return {
        "status": "error",
        "error": f"the notebook runner stopped (exit code {run.code})",
        "cell": -1,
    }


def _clean_status(status: dict) -> dict:
    """Only the fields the feedback shows, with their types checked (defence in depth)."""
    clean: dict[str, Any] = {"status": status["status"]}
    for key, kind in (("cell", int), ("cells", int), ("seconds", (int, float))):
        if isinstance(status.get(key), kind) and not isinstance(status.get(key), bool):
            clean[key] = status[key]
    for key in ("error", "cell_source", "section"):
        if isinstance(status.get(key), str):
            clean[key] = status[key][:MAX_TEXT]
    tb = status.get("traceback")
    if isinstance(tb, list):
        clean["traceback"] = [str(t)[:MAX_TEXT] for t in tb[:40]]
    clean["output_truncated"] = bool(status.get("output_truncated"))
    clean.setdefault("cell", -1)
    return clean
