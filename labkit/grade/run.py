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
from labkit.grade.judge import (
    ExerciseResult,
    ExerciseSpec,
    LabSpec,
    imports_of,
    judge,
    python_source,
)
from labkit.grade.submissions import Options
from labkit.grade.wire import read_observations
from labkit.grade.workspace import Workspace

RUN_STATUSES = ("ok", "timeout", "error")  # what an executed notebook's status can be


def run_hidden_tests(nb: Any, cells: dict, lab: LabSpec, options: Options, ws: Workspace) -> list:
    student_imports = [
        s for c in nb.cells if c.cell_type == "code" for s in imports_of(str(c.source))
    ]
    todo = [s for s in lab.specs if s.exercise.id in cells]
    job = {
        "lab": lab.lab,
        "exercises": [
            {"id": s.exercise.id, "source": python_source(str(cells[s.exercise.id].source))}
            for s in todo
        ],
        "lab_imports": lab.prelude,
        "lab_exercises": [s.exercise.id for s in lab.specs],
        "student_imports": student_imports,
        "hidden_dirs": [str(ws.lib / rel) for rel in lab.hidden_rel],
        "exercise_modules": [
            n.strip() for n in ws.env.get(EXERCISE_MODULES_ENV_VAR, "").split(",") if n.strip()
        ],
        "exercise_timeout": options.exercise_timeout,
        "out": str(ws.dir / "probe"),
        "cwd": str(ws.dir / "probe"),
    }
    budget = len(todo) * (options.exercise_timeout + 5) + 120
    finished = ws.run("probe", job, budget, options)
    out = ws.dir / "probe"
    try:
        states = json.loads((out / "states.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        states = {}
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
        state = states.get(ex.id, {}) if isinstance(states, dict) else {}
        results.append(_exercise_result(spec, state, out / f"{i:02d}", finished, options, ws))
    return results


def _exercise_result(
    spec: ExerciseSpec, state: dict, stem: Path, finished: bool, options: Options, ws: Workspace
) -> ExerciseResult:
    ex = spec.exercise
    base = ExerciseResult(ex.id, ex.title, float(ex.points), "crashed", tests=len(spec.tests))
    if state.get("state") == "timeout":
        try:
            number = int(stem.with_suffix(".progress").read_text())
            where = f" on {describe_test(spec.tests[number], number + 1)}"
        except (OSError, ValueError, IndexError):
            where = ""
        base.status = "timeout"
        base.message = (
            f"your code did not finish within {options.exercise_timeout:g} s{where} "
            "(an endless loop?)"
        )
        return base
    try:
        meta = read_observations(stem.with_suffix(".npz"))
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

    work = ws.dir / "work"
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in copy.cells:  # stored outputs are never run, read or trusted
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    data = None
    if lab.needs_data:
        data = options.data
        if options.data == "phantom":
            if lab.phantom_root is not None:
                shutil.copytree(lab.phantom_root, work / ".labkit-cache" / lab.phantom_root.name)
        elif options.data:
            data = str(Path(options.data).resolve())
            ws.env["LABKIT_DATA"] = data
    try:
        inject_parameters(copy, {"PROFILE": options.profile, "DATA": data})
    except ValueError:
        pass  # no parameters cell: LABKIT_PROFILE still applies
    path = work / "submission.ipynb"
    nbformat.write(copy, path)
    run_dir = ws.dir / "run"
    run_dir.mkdir()
    kernel_env = {**ws.env, "PYTHONPATH": str(ws.lib)}
    job = {
        "notebook": str(path),
        "cwd": str(work),
        "timeout": options.timeout,
        "kernel_env": kernel_env,
        "max_output_bytes": options.max_output_bytes,
        "out": str(run_dir),
    }
    finished = ws.run("execute", job, options.timeout + 120, options)
    try:
        status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
        if status.get("status") in RUN_STATUSES:
            return status
    except (OSError, ValueError):
        pass
    if not finished:
        return {"status": "timeout", "error": f"stopped after {options.timeout:g} s", "cell": -1}
    return {"status": "error", "error": f"the notebook runner failed: {ws.log_tail('execute')}"}
