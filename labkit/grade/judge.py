"""The grader's own side of the hidden tests: expected values before any student code runs,
and the verdicts, reached here from a worker's observations (``labkit.grade.wire``).

``prepare_lab`` reads the lab source (its exercise ids and import statements), snapshots
labkit, the exercise modules and the hidden-test files as bytes (the workers' private copy),
builds every exercise's tests (``labkit.grade.hidden.exercise_tests``) and runs them on the
reference. ``judge`` compares a worker's observations with those expected values: an exercise
passes when every test does, and the message names the first one that did not.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import pkgutil
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.checks.compare import describe
from labkit.checks.diagnose import diagnose
from labkit.checks.probes import judge_probe
from labkit.checks.registry import (
    EXERCISE_MODULES_ENV_VAR,
    EXERCISES,
    Case,
    Exercise,
    get_exercise,
    resolve,
)
from labkit.checks.verdict import STUB, changed, verdict
from labkit.course.build import build_lab, exercise_cells, exercise_sections, find_labs
from labkit.grade.absent import stub_reference
from labkit.grade.hidden import (
    Probe,
    describe_test,
    exercise_tests,
    load_hidden_tests,
    set_run_seed,
)
from labkit.grade.manual import Question, questions_of
from labkit.grade.secret import check_secret, derive_seed, new_secret
from labkit.grade.source import imports_of
from labkit.grade.wire import decode, encode, has_opaque


@dataclass
class ExerciseResult:
    id: str
    title: str
    max_points: float
    status: str  # pass | fail | stub | missing | timeout | crashed
    message: str = ""
    hint: str = ""
    passed: int = 0
    tests: int = 0
    notes: list[str] = field(default_factory=list)
    earned: float | None = None  # partial credit (tests with points), else all or nothing
    section: str = ""  # the heading above the exercise cell in the lab's student notebook

    @property
    def name(self) -> str:
        """The exercise as a student finds it: its section, its title, then its id (for the
        instructor): ``section “5. Exercise 2: the loss”, Combined loss (05.combined_loss)``."""
        where = f"section \u201c{self.section}\u201d, " if self.section else ""
        return f"{where}{self.title} ({self.id})"

    @property
    def points(self) -> float:
        if self.earned is not None and self.status in ("pass", "fail"):
            return self.earned
        return self.max_points if self.status == "pass" else 0.0


@dataclass
class ExerciseSpec:
    """One exercise as the grader sees it (its tests depend on the student: ``tests_for``)."""

    exercise: Exercise
    absent: dict[str, bytes] = field(default_factory=dict)  # the copy's stubbed reference
    section: str = ""  # the heading above its cell in the lab's student notebook

    def result(self, status: str, message: str = "", **more: Any) -> ExerciseResult:
        """A result for this exercise (its id, title, points and section filled in)."""
        ex = self.exercise
        return ExerciseResult(
            ex.id, ex.title, float(ex.points), status, message, section=self.section, **more
        )


@dataclass
class ExerciseTests:
    """One exercise's tests for one student: its seed, the tests and the expected observations."""

    seed: int
    tests: list[Case | Probe]
    expected: list[dict]


@dataclass
class LabSpec:
    lab: str
    stem: str
    specs: list[ExerciseSpec]
    prelude: list[str]  # the lab's own import statements
    snapshot: dict[str, bytes]
    hidden_rel: list[str]  # the hidden-test folders inside the private copy of labkit
    needs_data: bool
    secret: bytes = b""  # the run's secret (labkit.grade.secret): never leaves the grader
    hidden_dirs: tuple[Path, ...] = ()
    questions: list[Question] = field(default_factory=list)  # written answers, marked by hand
    phantom_root: Path | None = None  # phantom data, bound read-only into each notebook's world
    solution: Any = None  # the lab's solution notebook (to time the reference: --timeout)


def snapshot_sources(
    hidden_dirs: tuple[Path, ...],
) -> tuple[dict[str, bytes], list[str], dict[str, Path]]:
    """labkit, the exercise modules and the hidden-test files as bytes, read now.

    Returns:
        ``(files, hidden, roots)``: relative path -> bytes, the hidden folders relative to
        the copy, and each top-level entry of the copy -> the real file or folder it came from.
    """
    files: dict[str, bytes] = {}
    roots: dict[str, Path] = {}

    def add_tree(src: Path, dest: str) -> None:
        roots[dest] = src
        if src.is_file():
            files[dest] = src.read_bytes()
            return
        for p in sorted(src.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                files[f"{dest}/{p.relative_to(src).as_posix()}"] = p.read_bytes()

    # The whole labkit package, wherever this module sits inside it.
    add_tree(Path(importlib.util.find_spec("labkit").submodule_search_locations[0]), "labkit")
    for name in filter(None, os.environ.get(EXERCISE_MODULES_ENV_VAR, "").split(",")):
        top = name.strip().split(".")[0]
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.origin:
            raise ValueError(f"{EXERCISE_MODULES_ENV_VAR} names {name!r}, which cannot be found")
        origin = Path(spec.origin)
        if spec.submodule_search_locations:
            add_tree(origin.parent, top)
        else:
            add_tree(origin, f"{top}.py")
    hidden = []
    for i, folder in enumerate(hidden_dirs):
        add_tree(Path(folder), f"_hidden/{i}")
        hidden.append(f"_hidden/{i}")
    return files, hidden, roots


def expected_observation(test: Case | Probe, reference: Any) -> dict:
    """What the reference does on ``test``, in the same form a worker reports it."""

    if isinstance(test, Probe) and test.expect is not None:
        return {"kind": "deferred"}  # depends on what the student's module reports: judge()
    try:
        if isinstance(test, Case):
            value = reference(*copy.deepcopy(test.args), **copy.deepcopy(dict(test.kwargs)))
        else:
            value = test.run(reference)
    except Exception as err:  # noqa: BLE001 (a test may expect an exception)
        return {"kind": "raised", "type": type(err).__name__, "text": str(err)}
    arrays: dict = {}
    tree = encode(value, arrays)
    return {"kind": "value", "value": decode(tree, arrays)}


def other_labs_references(lab: str) -> tuple[str, ...]:
    """References of every other lab's exercises kept in ``labkit.exercises`` (references
    only, which no library code uses): lab 06's gate could stand in for lab 07's."""
    import labkit.exercises

    for module in pkgutil.iter_modules(labkit.exercises.__path__):
        importlib.import_module(f"labkit.exercises.{module.name}")
    return tuple(
        str(e.reference)
        for e in EXERCISES.values()
        if e.id[:2] != lab
        and isinstance(e.reference, str)
        and e.reference.startswith("labkit.exercises.")
    )


_PREPARE = threading.Lock()  # the exercise and hidden-test registries are process-wide


def prepare_lab(
    lab: str, source_dir: Path, hidden_dirs: tuple[Path, ...] = (), secret: bytes | None = None
) -> LabSpec:
    """Everything the grader needs before any submission runs (nothing runs student code).

    Args:
        secret: the run's secret (``labkit.grade.secret``), from which every student's
            hidden inputs are derived; by default drawn now, so no student can compute
            answers for them in advance. Each exercise's tests are built per student
            (``tests_for``); here they are built once with a throw-away seed, to refuse a
            test whose reference result cannot cross processes before anyone is graded.

    Thread-safe: two ``grade`` calls in one process (threads) prepare one after the other.
    """
    with _PREPARE:
        return _prepare_lab(lab, source_dir, tuple(hidden_dirs), secret)


def _prepare_lab(
    lab: str, source_dir: Path, hidden_dirs: tuple[Path, ...], secret: bytes | None
) -> LabSpec:
    (source,) = find_labs(source_dir, [lab])
    info, student, solution = build_lab(source, notebooks_dir=source_dir)
    snapshot, hidden_rel, roots = snapshot_sources(hidden_dirs)
    load_hidden_tests(lab, list(hidden_dirs))
    secret = new_secret() if secret is None else check_secret(secret)
    set_run_seed(secrets.randbits(62))
    specs = []
    sections = exercise_sections(student)
    # the lab's own imports bind names its exercise cells may use (lab 03's given decoder
    # uses the DoubleConv its set-up cell imports)
    prelude = [s for c in solution.cells if c.cell_type == "code" for s in imports_of(c.source)]
    for exercise_id in info.exercises:
        try:
            exercise = get_exercise(exercise_id)
        except KeyError as err:
            raise ValueError(f"{source}: {err.args[0]}") from None
        reference = exercise.reference_impl()
        tests = exercise_tests(exercise)
        expected = [expected_observation(t, reference) for t in tests]
        for test, exp in zip(tests, expected):
            if exp["kind"] == "value" and has_opaque(exp["value"]):
                raise ValueError(
                    f"test {test.label!r} of {exercise_id}: the reference's result cannot be "
                    "compared across processes; make the test return numbers, strings, "
                    "tuples, lists, dicts, arrays or tensors"
                )
        cell = exercise_cells(solution).get(exercise_id)
        allowed = "\n".join([*prelude, cell.source if cell is not None else ""])
        named = {resolve(p, exercise_id) for p in exercise.absent}
        provided = tuple(
            ref
            for other in info.exercises
            if other != exercise_id and (ref := get_exercise(other).reference_impl()) not in named
        )
        absent = stub_reference(
            exercise, snapshot, roots, other_labs_references(lab), allowed, provided
        )
        specs.append(ExerciseSpec(exercise, absent, sections.get(exercise_id, "")))
    text = Path(source).read_text(encoding="utf-8")
    needs_data = not re.search(r"needs_data\s*=\s*False", text)
    spec = LabSpec(lab, info.stem, specs, prelude, snapshot, hidden_rel, needs_data, secret)
    spec.hidden_dirs = hidden_dirs
    spec.questions = questions_of(student)
    spec.solution = solution
    return spec


def tests_for(lab: LabSpec, spec: ExerciseSpec, student: str) -> ExerciseTests:
    """``spec``'s tests for ``student``, from a seed only the grader can derive, and what the
    reference does on each (computed here, in the grader's process)."""
    seed = derive_seed(lab.secret, lab.lab, spec.exercise.id, student)
    with _PREPARE:
        load_hidden_tests(lab.lab, list(lab.hidden_dirs))
        set_run_seed(seed)
        tests = exercise_tests(spec.exercise)
        reference = spec.exercise.reference_impl()
        expected = [expected_observation(t, reference) for t in tests]
    return ExerciseTests(seed, tests, expected)


def judge(spec: ExerciseSpec, tests: ExerciseTests, meta: dict) -> ExerciseResult:
    """Compare a worker's observations with the expected ones; the verdict is reached here."""
    with _PREPARE:  # probes with ``expect`` build labkit's modules here, from global RNGs
        return _judge(spec, tests, meta)


def _judge(spec: ExerciseSpec, tests: ExerciseTests, meta: dict) -> ExerciseResult:
    ex = spec.exercise
    result = spec.result("pass", tests=len(tests.tests))
    result.notes = [str(n)[:500] for n in meta.get("notes", [])][:10]
    if not meta.get("defined"):
        kind = "a class" if ex.function[:1].isupper() else "a function"
        return _failed(
            result,
            "missing",
            f"your exercise cell does not define {kind} named `{ex.function}` "
            "(the grader looks for this name in the exercise cell)",
        )
    observations = meta["observations"]
    if not isinstance(observations, list) or len(observations) != len(tests.tests):
        raise ValueError(f"{len(observations)} observations for {len(tests.tests)} tests")
    # Partial credit when any test has points: every test is judged, each weighs its points
    # (1 when unset) and the exercise earns its share; otherwise the first failure decides.
    weights = [getattr(t, "points", None) for t in tests.tests]
    partial = any(w is not None for w in weights)
    weights = [1.0 if w is None else float(w) for w in weights]
    first_failure, passed_weight = None, 0.0
    for number, (test, exp, obs) in enumerate(zip(tests.tests, tests.expected, observations), 1):
        if not isinstance(obs, dict) or obs.get("kind") not in ("value", "raised"):
            raise ValueError(f"observation {number} is not in its form")
        label = describe_test(test, number)
        where = f"on {label}: " if isinstance(test, Case) else f"{label}: "
        if getattr(test, "verdict", False):
            where = ""
        message, why = _verdict(exp, obs, ex, test, label)
        if message == "stub":
            return _failed(result, "stub", STUB)
        if message:
            if first_failure is None:
                first_failure = where + message
                # the notebook's first hint for the same failure (checks.notebook.hint_ladder)
                hint = why or getattr(test, "hint", "") or ex.hint
                result.hint = "" if obs.get("reference_used") else hint
            if not partial:
                break
            continue
        passed_weight += weights[number - 1]
        if first_failure is None:
            result.passed += 1
    if partial:
        total = sum(weights) or 1.0
        result.earned = round(float(ex.points) * passed_weight / total, 4)
    if first_failure is not None:
        return _failed(result, "fail", first_failure)
    return result


def _verdict(
    exp: dict, obs: dict, ex: Exercise, test: Case | Probe, label: str = ""
) -> tuple[str | None, str]:
    """(why the observation ``obs`` does not match ``exp``, "stub", or None when it does;
    the diagnosis of the failure, or "").

    The verdict itself is ``labkit.checks.verdict.verdict`` and the diagnosis
    ``labkit.checks.diagnose.diagnose`` (the notebook's ``check`` uses both too); here only
    what exists across processes: a blocked reference, a probe whose observation is already
    a verdict, and values that could not cross.
    """
    if obs["kind"] == "raised" and obs.get("reference_used"):
        return str(obs["text"]).split(" (line ")[0], ""
    if isinstance(test, Case) and obs["kind"] == "value":  # decided here, never reported
        obs = {**obs, "changed_input": _changed_inputs(obs.get("inputs_after"), test)}
    if exp["kind"] == "deferred":  # computed now, here, from the student's evidence
        exp, obs = judge_probe(test, ex.reference_impl(), obs)
    if obs["kind"] == "value":
        got = obs["value"]
        if getattr(test, "verdict", False):
            return (None if got == exp.get("value") else str(got)), ""
        if has_opaque(got):
            return f"expected {describe(exp.get('value'))}, got {got!r}", ""
    atol = ex.atol if getattr(test, "atol", None) is None else test.atol
    rtol = ex.rtol if getattr(test, "rtol", None) is None else test.rtol
    status, message = verdict(exp, obs, atol, rtol)
    if status != "fail":
        return {"pass": None, "stub": "stub"}.get(status, message), ""
    # Computed here from the two observations; a "hint" inside the student's observation is
    # text the student's process wrote, so it is never shown (red team 3, A1).
    return message, diagnose(exp, obs, getattr(test, "label", "") or label)


def _changed_inputs(after: Any, test: Case) -> bool:
    """Did the call change its inputs? ``after`` is what the worker saw after the call;
    anything not in the inputs' own form counts as changed."""
    try:
        return after is None or changed(after, (test.args, dict(test.kwargs)))
    except Exception:  # noqa: BLE001 (the student's process sent it)
        return True


def _failed(result: ExerciseResult, status: str, message: str) -> ExerciseResult:
    result.status, result.message = status, message
    return result
