"""The grader's side of the worker processes (``labkit.grade_worker``) for one student.

``Workspace`` makes a student's temporary folders (a private copy of labkit, a home, a
working copy for the kernel), the stripped environment, and starts each worker in its own
session with a time limit, killing its process group (and the kernel's) afterwards.
``run_hidden_tests`` and ``execute`` write a worker's job, run it and read back its results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from labkit.checks import EXERCISE_MODULES_ENV_VAR
from labkit.grade_io import read_observations
from labkit.grade_judge import (
    ExerciseResult,
    ExerciseSpec,
    LabSpec,
    imports_of,
    judge,
    python_source,
)
from labkit.grade_worker import BOOT, kill_group
from labkit.hidden_tests import describe_test

if TYPE_CHECKING:
    from labkit.grade import Options

RUN_STATUSES = ("ok", "timeout", "error")  # what an executed notebook's status can be
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "CUDA_VISIBLE_DEVICES")
# Pretrained weights (lab 04) are shared, read-mostly downloads: a notebook finds the
# grader's copies instead of downloading them again into its own empty home.
_WEIGHT_CACHES = {
    "TORCH_HOME": Path.home() / ".cache" / "torch",
    "HF_HOME": Path.home() / ".cache" / "huggingface",
}
_PASSTHROUGH_ENV += ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "KAGGLEHUB_CACHE")


class Workspace:
    """A student's temporary folders and the worker processes started in them."""

    def __init__(self, root: Path, student: str, lab: LabSpec, options: Options) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=root))
        self.lib = self.dir / "lib"
        for rel, data in lab.snapshot.items():
            dest = self.lib / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        self.home = self.dir / "home"
        self.meta = self.dir / "meta"
        for d in (self.home / "tmp", self.meta, self.dir / "probe", self.dir / "work"):
            d.mkdir(parents=True)
        self.env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        threads = str(max(1, (os.cpu_count() or 1) // max(1, options.jobs)))
        self.env.update(
            HOME=str(self.home),
            USERPROFILE=str(self.home),
            TMPDIR=str(self.home / "tmp"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            MPLBACKEND="Agg",
            MPLCONFIGDIR=str(self.home / ".matplotlib"),
            IPYTHONDIR=str(self.home / ".ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            LABKIT_PROFILE=options.profile,
            LABKIT_CACHE=str(self.dir / "work" / ".labkit-cache"),
            OMP_NUM_THREADS=threads,
            MKL_NUM_THREADS=threads,
            PYTHONHASHSEED="0",
        )
        for name, default in _WEIGHT_CACHES.items():
            self.env[name] = os.environ.get(name, str(default))
        if os.environ.get(EXERCISE_MODULES_ENV_VAR):
            self.env[EXERCISE_MODULES_ENV_VAR] = os.environ[EXERCISE_MODULES_ENV_VAR]

    def run(self, mode: str, job: dict, timeout: float, options: Options) -> bool:
        """Start a worker and wait; False when it had to be killed for taking too long."""
        job = {**job, "max_file_bytes": options.max_file_bytes}
        job_path = self.meta / f"{mode}.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        log = open(self.meta / f"{mode}.log", "wb")  # noqa: SIM115 (closed below)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", BOOT, str(self.lib), mode, str(job_path)],
                cwd=job.get("cwd", self.dir),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            proc.wait(timeout=timeout)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
        self.kill(proc.pid)
        proc.wait()
        return finished

    def kill(self, pgid: int) -> None:
        if hasattr(os, "killpg"):
            kill_group(pgid)

    def log_tail(self, mode: str, chars: int = 600) -> str:
        try:
            with open(self.meta / f"{mode}.log", "rb") as f:
                f.seek(max(0, f.seek(0, 2) - chars))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def close(self) -> None:
        pgid = self.dir / "run" / "kernel.pgid"
        try:
            self.kill(int(pgid.read_text()))
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


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
    from labkit.course import inject_parameters

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
