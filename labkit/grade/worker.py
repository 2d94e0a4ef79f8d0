"""The grader's worker processes: they run student code, so ``labkit.grade`` never has to.

Every worker runs in a sandbox of its own (``labkit.grade.sandbox``: bubblewrap where it
works) and gets its job on stdin, never from a file. Two kinds:

hidden tests: ``labkit/grade/probe_boot.py`` (which never imports labkit) forks one child
    for ONE exercise; the child imports labkit from the only copy in its sandbox, in which
    the exercise's reference is absent (a stub), and runs ``observe_exercise``: the lab
    source's imports and labkit's references of the lab's *other* exercises (under their
    names), the student's own imports, then only the *definitions* in the exercise cell
    (imports, ``def``, ``class``, assignments to names, and the same inside ``if``/``try``);
    then it calls the student's object on every test (inputs drawn from this exercise's
    secret seed, fixed edge cases) and sends what it *observed* (return values, raised
    exceptions, whether an input changed) down a pipe to the boot process. No verdict is
    reached here: the grader compares the observations with values it computed itself.
``execute``: the whole notebook on a fresh Jupyter kernel (nbclient) in the worker's private
    folder, with a deadline for the notebook as a whole; outputs beyond a size cap are
    dropped. It prints its result as one line on stdout, after the job's nonce: the kernel
    (student code) runs in another process that cannot reach this one's pipe, and the
    grader also requires exit code 0, so a kernel that kills this process cannot report "ok".

Results travel as JSON and ``.npz`` arrays read back with ``allow_pickle=False`` (a pickle
from a student's process could run code in the grader) and bounded JSON parsing.
"""

from __future__ import annotations

import ast
import copy
import importlib
import io
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from labkit.checks.registry import Case, get_exercise
from labkit.grade.absent import USED_MESSAGE, where_of
from labkit.grade.hidden import exercise_tests, load_hidden_tests, set_run_seed
from labkit.grade.procs import kill_descendants, make_undumpable, subreaper
from labkit.grade.source import imports_of, python_source
from labkit.grade.wire import MAX_TEXT, encode

# The execute worker's command line: python -I -c BOOT <lib> execute (job on stdin). -I ignores
# PYTHONPATH, user site-packages and the current folder, so `import labkit` finds the copy.
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
    (mode,) = argv
    job = json.loads(sys.stdin.readline())
    if mode != "execute":
        raise SystemExit(f"unknown mode {mode!r}")
    execute(job)


# ---------------------------------------------------------------------------- probe
def block_reference(exercise: Any, namespace: dict) -> None:
    """Make labkit's reference unusable here: every module attribute (and name) bound to it.

    Re-exports count too (``labkit.models.DoubleConv`` is ``labkit.models.blocks.DoubleConv``).
    Tests keep the reference they captured before this ran.
    """
    reference = exercise.reference_impl()
    message = USED_MESSAGE.format(where=where_of(exercise))

    def blocked(*args: Any, **kwargs: Any) -> Any:
        raise ReferenceUsedError(message)

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
    """Run the cell's definitions in ``namespace``; notes on what failed or was skipped.

    Top-level statements of the kinds in ``RUN_STATEMENTS`` run; inside an ``if`` or ``try``
    the same filter applies again, so a statement skipped at the top is skipped there too.
    This keeps a cell's own checks and prints out of the tests; it is no security boundary
    (a definition can run code): nothing decided here can pass a test, the grader judges.
    """
    notes: list[str] = []
    try:
        tree = ast.parse(source, filename=CELL_NAME)
    except SyntaxError as err:
        return [f"your exercise cell has a syntax error on line {err.lineno}: {err.msg}"]
    skipped: list[int] = []
    for node in _definitions(tree.body, skipped):
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


def _definitions(body: list[ast.stmt], skipped: list[int]) -> list[ast.stmt]:
    """The statements of ``body`` that run, ``if``/``try`` blocks filtered the same way."""
    kept = []
    for node in body:
        runs = isinstance(node, RUN_STATEMENTS)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            runs = all(_names_only(t) for t in targets)
        if not runs:
            skipped.append(node.lineno)
            continue
        if isinstance(node, (ast.If, ast.Try)):
            for name in ("body", "orelse", "finalbody"):
                if hasattr(node, name):
                    inner = _definitions(getattr(node, name), skipped)
                    setattr(node, name, inner or ([ast.Pass()] if name == "body" else []))
            for handler in getattr(node, "handlers", []):
                handler.body = _definitions(handler.body, skipped) or [ast.Pass()]
            ast.fix_missing_locations(node)
        kept.append(node)
    return kept


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


def observe_exercise(job: dict, results: int, progress: int) -> None:
    """Child: define the student's object, run every test on it, send the observations.

    Args:
        job: this exercise's job: ``id``, ``source`` (the exercise cell), ``lab``, ``cells``
            (every code cell's source, for the student's imports), ``lab_imports``,
            ``lab_exercises``, ``exercise_modules``, ``hidden_rel``, ``lib`` (the copy of
            labkit this process imported), ``seed`` (this exercise's secret seed).
        results: a pipe to the boot process: the observations as ``.npz`` bytes.
        progress: a pipe to the boot process: the number of each test as it starts.
    """
    os.chdir(os.environ.get("HOME") or "/")
    for name in job["exercise_modules"]:  # registered first: no need to import every lab
        importlib.import_module(name)
    load_hidden_tests(job["lab"], [Path(job["lib"]) / rel for rel in job["hidden_rel"]])
    set_run_seed(job["seed"])
    exercise = get_exercise(job["id"])
    tests = exercise_tests(exercise)  # built before any student code runs here
    # The lab's own imports (trusted: from the lab source) and, under their function names,
    # labkit's references of the lab's other exercises: an exercise that uses another one
    # (UNet3 uses DoubleConv) gets labkit's, as the notebook does after a failed check.
    namespace: dict = {"__name__": "__main__"}
    for statement in job["lab_imports"]:
        try:
            exec(compile(statement, "<lab imports>", "exec"), namespace)
        except Exception:  # noqa: BLE001 (e.g. a plotting module missing here)
            pass
    for other_id in job["lab_exercises"]:
        if other_id != exercise.id:
            other = get_exercise(other_id)
            namespace[other.function] = other.reference_impl()
    block_reference(exercise, namespace)
    student_imports = [s for cell in job["cells"] for s in imports_of(cell)]
    for statement in student_imports:  # the student's own imports, from any cell
        try:
            exec(compile(statement, "<imports>", "exec"), namespace)
        except BaseException:  # noqa: BLE001 (a module the student imported may be missing)
            pass
    before = namespace.get(exercise.function)  # e.g. a name the lab's imports bound
    notes = run_definitions(python_source(job["source"]), namespace)
    defined = namespace.get(exercise.function, before) is not before
    meta: dict[str, Any] = {"notes": notes, "defined": defined}
    observations: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    if meta["defined"]:
        mark = lambda number: os.write(progress, f"{number}\n".encode())  # noqa: E731
        observations = observe_tests(namespace[exercise.function], tests, arrays, mark)
    meta["observations"] = observations
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    view = memoryview(buffer.getvalue())
    while view:
        view = view[os.write(results, view) :]


def observe_tests(obj: Any, tests: list, arrays: dict, mark: Any = None) -> list[dict]:
    """What ``obj`` does on each test: a return value (its arrays into ``arrays``), or the
    exception it raised; for a ``Case``, also its inputs after the call (whether it changed
    them is decided by the grader, from the inputs it made).

    Args:
        mark: called with each test's number as it starts (the boot process's progress).
    """
    observations = []
    for number, test in enumerate(tests):
        if mark is not None:
            mark(number)
        if isinstance(test, Case):
            args, kwargs = copy.deepcopy(test.args), copy.deepcopy(dict(test.kwargs))
            obs = _observe(lambda args=args, kwargs=kwargs: obj(*args, **kwargs), arrays)
            if obs["kind"] == "value":  # the grader compares them with the inputs it made
                obs["inputs_after"] = encode((args, kwargs), arrays)
        else:
            obs = _observe(lambda test=test: test.run(obj), arrays)
        observations.append(obs)
    return observations


def _observe(call: Any, arrays: dict) -> dict:
    try:
        value = call()
    except BaseException as err:  # noqa: BLE001
        return {
            "kind": "raised",
            "type": type(err).__name__,
            "reference_used": isinstance(err, ReferenceUsedError)
            or str(err).startswith(USED_MESSAGE.split("(")[0]),
            "text": _error_text(err),
        }
    return {"kind": "value", "value": encode(value, arrays)}


# ---------------------------------------------------------------------------- execute
def execute(job: dict) -> None:
    """Run the notebook on a fresh kernel with a deadline; print the result after the nonce.

    The notebook comes in the job (``notebook``: its JSON) and is written into this
    process's own working folder. This process is not dumpable (the kernel, student code
    with the same uid, cannot read its memory or reach its stdout through /proc) and is the
    subreaper of whatever the kernel leaves running, which it kills before answering.
    """
    make_undumpable()
    subreaper()
    # Lazy: nbclient, zmq and the kernel machinery are only needed here, and the probe
    # workers (one per student, before any test runs) should not pay for importing them.
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from labkit.course.build import section_above
    from labkit.course.kernel import capped_client, kernel_files, traceback_tail

    start = time.monotonic()
    deadline = start + job["timeout"]
    nb = nbformat.reads(job["notebook"], as_version=4)
    path = Path(job["cwd"]) / "submission.ipynb"
    nbformat.write(nb, path)  # for the kernel's __file__-less tools; never read back
    result: dict[str, Any] = {"status": "ok"}

    def on_kernel(pgid: int) -> None:  # for a grader without the sandbox: kill it if we hang
        print(f"{job['nonce']} kernel {int(pgid)}", flush=True)

    with kernel_files() as manager:  # connection files in a folder removed at the end
        client = capped_client(
            nb, deadline, job["max_output_bytes"], job["cwd"], on_kernel, manager
        )
        try:
            client.execute(
                env=job["kernel_env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
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
        result["section"] = section_above(nb, last)
        last -= sum(i < last for i in injected)
    result["cell"] = last
    result["cells"] = sum(c.cell_type == "code" for c in nb.cells) - len(injected)
    result["seconds"] = round(time.monotonic() - start, 3)
    result["output_truncated"] = client.dropped > 0
    kill_descendants()
    print(f"{job['nonce']} {json.dumps(result)}", flush=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
