"""The grader's worker processes: they run student code, so ``labkit.grade`` never has to.

``labkit.grade`` (the parent) starts each worker as a fresh ``python -I -c BOOT LIB MODE JOB``
with a stripped environment, its own session (so the whole process group can be killed), a
working folder of its own and ``LIB`` = a private copy of labkit taken when grading started
(so a submission that edits labkit's files on disk changes only its own copy). Two modes:

``probe``: the hidden tests. For each exercise, a forked child (own process group, stdin/out/
    err on /dev/null, a time limit) starts from the lab source's imports and labkit's
    references of the lab's *other* exercises (under their names), runs the student's own
    imports, then the *definitions* in the exercise cell (imports, ``def``, ``class``,
    assignments to names, ``if``/``try``;
    other top-level statements such as prints, loops or ``lk.checks.RESULTS[...] = ...`` are
    skipped), with the exercise's reference blocked; it then calls the student's object on
    every test and writes what it *observed* (return values, raised exceptions, whether an
    input changed) to ``NN.npz``. No verdict is reached here: the parent compares the
    observations with expected values it computed itself from an untouched labkit.
``execute``: the whole notebook on a fresh Jupyter kernel (nbclient) in the working copy, with
    a deadline for the notebook as a whole; outputs beyond a size cap are dropped. Writes
    ``status.json``: ok / error (+ the last traceback lines) / timeout. Grading never depends
    on it; it tells the student whether their notebook runs.

Results travel as files: JSON, and ``.npz`` arrays read back with ``allow_pickle=False`` (a
pickle from a student's process could run code in the parent).
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from labkit.checks.registry import Case, get_exercise
from labkit.checks.verdict import changed
from labkit.grade.hidden import exercise_tests, load_hidden_tests
from labkit.grade.wire import MAX_TEXT, encode, write_json

# The worker's command line: python -I -c BOOT <lib> <mode> <job.json>. -I ignores PYTHONPATH,
# user site-packages and the current folder, so `import labkit` finds the private copy first.
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from labkit.grade.worker import main; main(sys.argv[2:])"
)
CELL_NAME = "<exercise cell>"
# Top-level statements of an exercise cell the grader runs: definitions, not actions.
RUN_STATEMENTS = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.If,
    ast.Try,
)


def main(argv: list[str]) -> None:
    mode, job_path = argv
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    limit_resources(job.get("max_file_bytes"))
    if mode == "probe":
        probe(job)
    elif mode == "execute":
        execute(job)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


def limit_resources(max_file_bytes: int | None) -> None:
    """No core dumps; no file larger than ``max_file_bytes`` (inherited by the kernel)."""
    try:
        import resource
    except ImportError:  # Windows: no limits
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if max_file_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))


# ---------------------------------------------------------------------------- probe
def probe(job: dict) -> None:
    """Run every exercise's tests on the student's definitions; one child process each."""
    # One thread: the tests are small, and a forked child must not inherit a thread pool.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    out = Path(job["out"])
    for name in job["exercise_modules"]:  # registered first: no need to import every lab
        importlib.import_module(name)
    load_hidden_tests(job["lab"], job["hidden_dirs"])
    # The lab's own imports (trusted: from the lab source) and, under their function names,
    # labkit's references of all the lab's exercises: an exercise that uses another one
    # (UNet3 uses DoubleConv) gets labkit's, as the notebook does after a failed check.
    base: dict = {"__name__": "__main__"}
    for statement in job["lab_imports"]:
        try:
            exec(compile(statement, "<lab imports>", "exec"), base)
        except Exception:  # noqa: BLE001 (e.g. a plotting module missing here)
            pass
    references = {}
    for exercise_id in job["lab_exercises"]:
        other = get_exercise(exercise_id)
        references[other.function] = (exercise_id, other.reference_impl())
    states: dict[str, dict] = {}
    for i, item in enumerate(job["exercises"]):
        exercise = get_exercise(item["id"])
        # Built before any student code runs in this process tree.
        tests = exercise_tests(exercise)
        namespace = dict(base)
        namespace.update({f: r for f, (owner, r) in references.items() if owner != exercise.id})
        start = time.perf_counter()
        state = run_child(
            lambda exercise=exercise, tests=tests, item=item, i=i, ns=namespace: observe_exercise(
                exercise, tests, item, job, ns, out / f"{i:02d}"
            ),
            timeout=job["exercise_timeout"],
        )
        state["seconds"] = round(time.perf_counter() - start, 3)
        states[item["id"]] = state
        write_json(out / "states.json", states)


def run_child(body: Any, timeout: float) -> dict:
    """``body()`` in a forked child with a time limit; ``{"state": done|timeout|crashed}``."""
    if not hasattr(os, "fork"):  # Windows: in this process, without a hard limit
        try:
            body()
            return {"state": "done"}
        except BaseException as err:  # noqa: BLE001
            return {"state": "crashed", "error": f"{type(err).__name__}: {err}"[:MAX_TEXT]}
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's code
        code = 0
        try:
            os.setpgid(0, 0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            body()
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        kill_group(pid)
        os.waitpid(pid, 0)
        return {"state": "timeout"}
    kill_group(pid)  # anything the student's code left running
    code = os.waitstatus_to_exitcode(status)
    return {"state": "done"} if code == 0 else {"state": "crashed", "code": code}


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def block_reference(exercise: Any, namespace: dict) -> None:
    """Make labkit's reference unusable here: every module attribute (and name) bound to it.

    Re-exports count too (``labkit.models.DoubleConv`` is ``labkit.models.blocks.DoubleConv``).
    Tests keep the reference they captured before this ran.
    """
    reference = exercise.reference_impl()
    where = (
        exercise.reference.replace(":", ".")
        if isinstance(exercise.reference, str)
        else getattr(reference, "__qualname__", "the reference")
    )

    def blocked(*args: Any, **kwargs: Any) -> Any:
        raise ReferenceUsedError(
            f"your code calls labkit's own implementation ({where}); the exercise asks you "
            "to write it yourself"
        )

    tops = {"labkit", str(getattr(reference, "__module__", "labkit")).split(".")[0]}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in tops:
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            if value is reference:
                setattr(module, attr, blocked)
    for attr, value in list(namespace.items()):
        if value is reference:
            namespace[attr] = blocked
    if isinstance(exercise.reference, str) and "." in exercise.reference.partition(":")[2]:
        # A method such as "labkit.models.cascade:CascadeModel.infection_input": its class.
        module_name, _, path = exercise.reference.partition(":")
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        setattr(owner, name, blocked)


class ReferenceUsedError(RuntimeError):
    pass


def run_definitions(source: str, namespace: dict) -> list[str]:
    """Run the cell's top-level definitions in ``namespace``; notes on what failed or was skipped."""
    notes: list[str] = []
    try:
        tree = ast.parse(source, filename=CELL_NAME)
    except SyntaxError as err:
        return [f"your exercise cell has a syntax error on line {err.lineno}: {err.msg}"]
    skipped = []
    for node in tree.body:
        runs = isinstance(node, RUN_STATEMENTS)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            runs = all(_names_only(t) for t in targets)
        if not runs:
            skipped.append(node.lineno)
            continue
        code = compile(ast.Module(body=[node], type_ignores=[]), CELL_NAME, "exec")
        try:
            exec(code, namespace)
        except BaseException as err:  # noqa: BLE001 (a student's error is a note)
            text = f"{type(err).__name__}: {err}".strip().rstrip(":")[:MAX_TEXT]
            notes.append(f"line {node.lineno} of your exercise cell raised {text}")
    if skipped:
        lines = ", ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else "")
        notes.append(
            f"the grader ran only the imports and definitions of your exercise cell; "
            f"line(s) {lines} (other statements) were not run"
        )
    return notes


def _names_only(target: ast.AST) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_names_only(t) for t in target.elts)
    return False


def _error_text(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().rstrip(":")
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == CELL_NAME]
    if frames:
        text += f" (line {frames[-1].lineno} of your exercise cell)"
    return text[:MAX_TEXT]


def observe_exercise(
    exercise: Any, tests: list, item: dict, job: dict, namespace: dict, out: Path
) -> None:
    """Child: define the student's object, run every test on it, save the observations."""
    scratch = out.parent / f"scratch-{out.name}"
    scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(scratch)
    block_reference(exercise, namespace)
    for statement in job["student_imports"]:  # the student's own imports, from any cell
        try:
            exec(compile(statement, "<imports>", "exec"), namespace)
        except BaseException:  # noqa: BLE001 (a module the student imported may be missing)
            pass
    before = namespace.get(exercise.function)  # e.g. a name the lab's imports bound
    notes = run_definitions(item["source"], namespace)
    defined = namespace.get(exercise.function, before) is not before
    meta: dict[str, Any] = {"notes": notes, "defined": defined}
    observations: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    if meta["defined"]:
        obj = namespace[exercise.function]
        progress = out.with_suffix(".progress")
        for number, test in enumerate(tests):
            progress.write_text(str(number), encoding="utf-8")
            if isinstance(test, Case):
                args, kwargs = copy.deepcopy(test.args), copy.deepcopy(dict(test.kwargs))
                obs = _observe(lambda args=args, kwargs=kwargs: obj(*args, **kwargs), arrays)
                if obs["kind"] == "value":
                    obs["changed_input"] = bool(changed((args, kwargs), (test.args, test.kwargs)))
            else:
                obs = _observe(lambda test=test: test.run(obj), arrays)
            observations.append(obs)
    meta["observations"] = observations
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out.with_suffix(".npz"))


def _observe(call: Any, arrays: dict) -> dict:
    try:
        value = call()
    except BaseException as err:  # noqa: BLE001
        return {
            "kind": "raised",
            "type": type(err).__name__,
            "reference_used": isinstance(err, ReferenceUsedError),
            "text": _error_text(err),
        }
    return {"kind": "value", "value": encode(value, arrays)}


# ---------------------------------------------------------------------------- execute
def execute(job: dict) -> None:
    """Run the notebook on a fresh kernel with a deadline; write ``status.json``."""
    # Lazy: nbclient, zmq and the kernel machinery are only needed here, and the probe
    # workers (one per student, before any test runs) should not pay for importing them.
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from labkit.course.kernel import capped_client, traceback_tail

    out = Path(job["out"])
    start = time.monotonic()
    deadline = start + job["timeout"]
    nb = nbformat.read(job["notebook"], as_version=4)
    result: dict[str, Any] = {"status": "ok"}
    client = capped_client(
        nb, deadline, job["max_output_bytes"], job["cwd"], pgid_file=out / "kernel.pgid"
    )
    try:
        client.execute(env=job["kernel_env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        result = {"status": "timeout", "error": f"stopped after {job['timeout']:g} s"}
    except CellExecutionError as err:
        result = {
            "status": "error",
            "error": f"{err.ename}: {err.evalue}"[:MAX_TEXT],
            "traceback": traceback_tail(err.traceback),
        }
    except DeadKernelError as err:
        result = {"status": "error", "error": f"the kernel died ({err})"[:MAX_TEXT]}
    except Exception as err:  # noqa: BLE001 (kernel failed to start, ...)
        result = {"status": "error", "error": f"{type(err).__name__}: {err}"[:MAX_TEXT]}
    # Cell numbers as the student sees them: without the injected parameters cell.
    injected = [i for i, c in enumerate(nb.cells) if c.get("id") == "injected-parameters"]
    last = client.last_cell
    if last >= 0:
        first_line = next((ln for ln in nb.cells[last].source.splitlines() if ln.strip()), "")
        result["cell_source"] = first_line.strip()[:80]
        last -= sum(i < last for i in injected)
    result["cell"] = last
    result["cells"] = sum(c.cell_type == "code" for c in nb.cells) - len(injected)
    result["seconds"] = round(time.monotonic() - start, 3)
    result["output_truncated"] = client.dropped > 0
    write_json(out / "status.json", result)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
