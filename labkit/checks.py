"""Exercise checks: ``[PASS]``, or what was expected and what came back, in a student's words.

In a lab, an exercise cell defines a function with a fixed name and the next cell checks it::

    # %% tags=["exercise"] exercise="01.minmax_scale"
    def minmax_scale(x):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

    # %%
    minmax_scale = lk.checks.check("01.minmax_scale", minmax_scale)

``check`` runs the exercise's tests, prints one verdict and returns the function the rest of
the notebook should use: the student's own when it passes, otherwise labkit's reference
(it says so), so a notebook with stubs or mistakes still runs to the end.

Where things live:
    * ``EXERCISES``: the registry, exercise id -> ``Exercise``. The course's exercises are
      registered by ``labkit.exercises`` (imported on the first lookup of an unknown id), and
      by any module named in ``LABKIT_EXERCISE_MODULES`` (comma-separated; for an
      instructor's own labs). References and cases are import-path strings
      (``"labkit.data.preprocess:minmax_scale"``) resolved only when used.
    * ``RESULTS``: exercise id -> ``{"status": "pass"|"fail"|"stub", "own": bool,
      "message": str}``, the one record of what this kernel's checks saw. Display only: a
      grader must not trust it (a student can overwrite it); ``labkit grade`` re-runs its own
      tests on the student's functions.
    * ``SUBMITTED``: exercise id -> the student's original function object as passed to
      ``check`` (before the fallback replaced the name), for graders working in the kernel.

Environment:
    ``LABKIT_CHECKS_STRICT=1`` makes a check that does not pass raise ``CheckError``
    (``labkit course run`` sets it: a solution notebook must pass its own checks).
"""

from __future__ import annotations

import copy
import importlib
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STRICT_ENV_VAR = "LABKIT_CHECKS_STRICT"
EXERCISE_MODULES_ENV_VAR = "LABKIT_EXERCISE_MODULES"
COURSE_EXERCISES_MODULE = "labkit.exercises"
_ID = re.compile(r"^\d\d\.[A-Za-z_][A-Za-z0-9_]*$")

EXERCISES: dict[str, Exercise] = {}
RESULTS: dict[str, dict[str, Any]] = {}
SUBMITTED: dict[str, Any] = {}
_loaded_modules = False


class CheckFailed(AssertionError):
    """Raised by a test when the student's result is wrong; the message is for the student."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class CheckError(AssertionError):
    """A check did not pass while ``LABKIT_CHECKS_STRICT`` is set."""


@dataclass(frozen=True)
class Case:
    """One input to try: ``fn(*args, **kwargs)``; ``label`` says it in words ("a 2x3 image")."""

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Exercise:
    """An exercise: what the student writes and how it is checked.

    Args:
        id: ``"NN.name"``, NN = the lab number; matches the cell's ``exercise=`` metadata.
        title: a few words for the verdict line, e.g. ``"Min-max scaling"``.
        function: the name the student defines (``"minmax_scale"``).
        reference: labkit's implementation, as ``"module:attr"`` or a callable.
        cases: a callable (or ``"module:attr"``) returning a list of ``Case``; each is run
            through the student's function and the reference and the results compared.
        test: instead of, or after, the cases: ``test(student, reference)`` raising
            ``CheckFailed`` (for classes such as ``nn.Module`` blocks).
        points: marks for ``labkit grade``.
        hint: printed after a failure.
        atol, rtol: tolerances for comparing numbers.
    """

    id: str
    title: str
    function: str
    reference: str | Callable
    cases: str | Callable[[], list[Case]] | None = None
    test: str | Callable[[Any, Any], None] | None = None
    points: float = 1.0
    hint: str = ""
    atol: float = 1e-5
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"exercise id {self.id!r} must look like '01.name'")
        if not self.function.isidentifier():
            raise ValueError(f"exercise {self.id}: function {self.function!r} is not a name")
        if self.cases is None and self.test is None:
            raise ValueError(f"exercise {self.id}: give cases=, test= or both")
        if self.points < 0:
            raise ValueError(f"exercise {self.id}: points must be >= 0, got {self.points}")

    @property
    def lab(self) -> str:
        return self.id.split(".", 1)[0]

    def reference_impl(self) -> Any:
        """labkit's implementation (imported now if given as a path)."""
        return resolve(self.reference, f"exercise {self.id}: reference")

    def make_cases(self) -> list[Case]:
        if self.cases is None:
            return []
        cases = resolve(self.cases, f"exercise {self.id}: cases")()
        return [c if isinstance(c, Case) else Case(args=tuple(c)) for c in cases]


def resolve(target: str | Callable, what: str = "target") -> Any:
    """Import ``"package.module:attribute"`` (attribute may be dotted); callables pass through."""
    if not isinstance(target, str):
        return target
    module_name, sep, attr = target.partition(":")
    if not sep or not attr:
        raise ValueError(f"{what} {target!r} must look like 'package.module:attribute'")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"{what} {target!r} cannot be imported: {err}") from err
    return obj


# ---------------------------------------------------------------------------- registry
def register(exercise: Exercise, replace: bool = False) -> Exercise:
    """Add an exercise to ``EXERCISES``; registering the same definition twice is harmless."""
    old = EXERCISES.get(exercise.id)
    if old is not None and old != exercise and not replace:
        raise ValueError(f"exercise {exercise.id!r} is already registered with another definition")
    EXERCISES[exercise.id] = exercise
    return exercise


def _load_exercise_modules() -> None:
    """Import the modules that register exercises (once per process)."""
    global _loaded_modules
    if _loaded_modules:
        return
    _loaded_modules = True
    try:
        importlib.import_module(COURSE_EXERCISES_MODULE)
    except ModuleNotFoundError as err:
        if err.name != COURSE_EXERCISES_MODULE:
            raise
    extra = os.environ.get(EXERCISE_MODULES_ENV_VAR, "")
    for name in filter(None, (n.strip() for n in extra.split(","))):
        importlib.import_module(name)


def get_exercise(exercise_id: str) -> Exercise:
    """The registered exercise with this id.

    Raises:
        KeyError: no such exercise (the message lists the known ids).
    """
    if exercise_id not in EXERCISES:
        _load_exercise_modules()
    if exercise_id not in EXERCISES:
        known = ", ".join(sorted(EXERCISES)) or "none"
        raise KeyError(f"unknown exercise id {exercise_id!r}; registered exercises: {known}")
    return EXERCISES[exercise_id]


def lab_exercises(lab: str) -> list[Exercise]:
    """The registered exercises of one lab, by id."""
    _load_exercise_modules()
    return [EXERCISES[k] for k in sorted(EXERCISES) if k.startswith(f"{lab}.")]


# ---------------------------------------------------------------------------- comparing
def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _kind(x: Any) -> str:
    if _is_tensor(x):
        return "a torch tensor"
    if isinstance(x, np.ndarray):
        return "a numpy array"
    if x is None:
        return "None"
    name = type(x).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _as_numpy(x: Any) -> np.ndarray:
    if _is_tensor(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _range(a: np.ndarray) -> str:
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if finite.size == 0:
        return "no finite values"
    return f"values in [{_fmt(float(finite.min()))}, {_fmt(float(finite.max()))}]"


def describe(x: Any) -> str:
    """A short description of a value: kind, shape, dtype and value range."""
    if _is_tensor(x) or isinstance(x, np.ndarray):
        a = _as_numpy(x)
        text = f"{_kind(x)} of shape {tuple(a.shape)}, dtype {x.dtype}"
        return text + (f", {_range(a.astype(np.float64))}" if a.size else ", empty")
    if isinstance(x, np.generic):
        return f"a single numpy {x.dtype} value ({x.item()!r})"
    return f"{_kind(x)} {x!r}"[:200]


def _compare_arrays(got: Any, expected: Any, atol: float, rtol: float) -> str | None:
    if _kind(got) != _kind(expected):
        wanted = f"{_kind(expected)} of shape {tuple(expected.shape)}, dtype {expected.dtype}"
        return f"expected {wanted}, got {describe(got)}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    if got.dtype != expected.dtype:
        return f"expected dtype {expected.dtype}, got dtype {got.dtype}"
    g, e = _as_numpy(got).astype(np.float64), _as_numpy(expected).astype(np.float64)
    if g.size == 0 or np.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
        return None
    # np.asarray: for 0-dim inputs (a scalar loss) np.abs returns a numpy scalar, which
    # does not support item assignment.
    diff = np.asarray(np.abs(g - e))
    diff[np.isnan(g) & np.isnan(e)] = 0.0
    diff[np.isnan(diff)] = np.inf  # NaN on one side only
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return (
        f"wrong values: expected {_range(e)}, got {_range(g)}; the largest difference is "
        f"{_fmt(float(diff[where]))} at index {tuple(int(i) for i in where)} "
        f"(expected {_fmt(float(e[where]))}, got {_fmt(float(g[where]))})"
    )


def compare(
    got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4, path: str = ""
) -> str | None:
    """Why ``got`` is not ``expected``, in a student's words, or ``None`` when they match.

    Arrays and tensors: same kind, shape, dtype, then values within ``atol + rtol*|e|``.
    Numbers: within tolerance (a one-element tensor counts as a number). Mappings, lists
    and tuples: compared item by item. Anything else: ``==``.
    """
    where = f"in {path}: " if path else ""
    if got is None and expected is not None:
        return f"{where}your function returned None; did you forget `return`?"
    if _is_tensor(expected) or isinstance(expected, np.ndarray):
        msg = _compare_arrays(got, expected, atol, rtol)
        return where + msg if msg else None
    if isinstance(expected, (numbers.Number, np.number)) and not isinstance(expected, bool):
        if (_is_tensor(got) or isinstance(got, np.ndarray)) and np.asarray(
            _as_numpy(got)
        ).size == 1:
            got = _as_numpy(got).item()
        if not isinstance(got, (numbers.Number, np.number)) or isinstance(got, bool):
            return f"{where}expected a number ({_fmt(float(expected))}), got {describe(got)}"
        g, e = float(got), float(expected)
        if math.isnan(e) and math.isnan(g):
            return None
        if not math.isclose(g, e, rel_tol=rtol, abs_tol=atol):
            return f"{where}expected {_fmt(e)}, got {_fmt(g)}"
        return None
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{where}expected a dict with keys {sorted(map(str, expected))}, got {describe(got)}"
        if set(got) != set(expected):
            missing = sorted(map(str, set(expected) - set(got)))
            extra = sorted(map(str, set(got) - set(expected)))
            parts = [
                f"missing keys {missing}" if missing else "",
                f"extra keys {extra}" if extra else "",
            ]
            return where + "; ".join(p for p in parts if p)
        for key in expected:
            msg = compare(got[key], expected[key], atol, rtol, f"{path or 'the result'}[{key!r}]")
            if msg:
                return msg
        return None
    if isinstance(expected, Sequence) and not isinstance(expected, (str, bytes)):
        if not isinstance(got, Sequence) or isinstance(got, (str, bytes)):
            return (
                f"{where}expected {_kind(expected)} of length {len(expected)}, got {describe(got)}"
            )
        if len(got) != len(expected):
            return f"{where}expected {len(expected)} items, got {len(got)}"
        short = len(expected) <= 8 and all(isinstance(v, numbers.Number) for v in (*expected, *got))
        for i, (g, e) in enumerate(zip(got, expected)):
            msg = compare(g, e, atol, rtol, f"{path or 'the result'}[{i}]")
            if msg and short:  # e.g. a shape: show it whole
                return f"{where}expected {tuple(expected)}, got {tuple(got)}"
            if msg:
                return msg
        return None
    if got != expected:
        return f"{where}expected {expected!r}, got {got!r}"
    return None


def expect(
    got: Any, expected: Any, what: str = "", atol: float = 1e-5, rtol: float = 1e-4, hint: str = ""
) -> None:
    """Raise ``CheckFailed`` unless ``got`` matches ``expected`` (for custom tests)."""
    msg = compare(got, expected, atol, rtol, path=what)
    if msg:
        raise CheckFailed(msg, hint)


# ---------------------------------------------------------------------------- running
@dataclass
class Outcome:
    """What the tests found: ``status`` is ``"pass"``, ``"fail"`` or ``"stub"``."""

    status: str
    message: str = ""
    hint: str = ""
    tests: int = 0


def _raised(err: BaseException, label: str) -> Outcome:
    if isinstance(err, NotImplementedError):
        return Outcome(
            "stub", "not implemented yet (your function still raises NotImplementedError)"
        )
    text = f"{type(err).__name__}: {err}".strip().rstrip(":")
    return Outcome("fail", f"{label}your function raised {text}")


def _changed(after: Any, before: Any) -> bool:
    """True when an array or tensor inside ``after`` differs from its copy in ``before``."""
    if _is_tensor(before) or isinstance(before, np.ndarray):
        return compare(after, before, 0.0, 0.0) is not None
    if isinstance(before, Mapping):
        return any(_changed(after[k], before[k]) for k in before)
    if isinstance(before, (list, tuple)):
        return len(after) != len(before) or any(map(_changed, after, before))
    return False  # other objects: no meaningful equality to compare


def run_tests(exercise: Exercise, fn: Any, cases: list[Case] | None = None) -> Outcome:
    """Run an exercise's cases (or the given ones) and custom test on ``fn``.

    Inputs are deep-copied for every call, so neither side sees the other's changes; a
    function that changes its input in place fails with a message saying so.
    Graders (``labkit grade``) call this with their own, stricter cases.
    """
    if not callable(fn):
        return Outcome("fail", f"expected a function, got {describe(fn)}", exercise.hint)
    reference = exercise.reference_impl()
    cases = exercise.make_cases() if cases is None else cases
    for case in cases:
        label = f"on {case.label}: " if case.label else ""
        expected = reference(*copy.deepcopy(case.args), **copy.deepcopy(dict(case.kwargs)))
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(dict(case.kwargs))
        try:
            got = fn(*args, **kwargs)
        except Exception as err:  # a student's bug is a verdict, not a crash
            out = _raised(err, label)
            out.hint = exercise.hint if out.status == "fail" else ""
            return out
        msg = compare(got, expected, exercise.atol, exercise.rtol)
        if msg:
            return Outcome("fail", label + msg, exercise.hint)
        if _changed((args, kwargs), (case.args, dict(case.kwargs))):
            return Outcome(
                "fail",
                label + "your function changed its input in place",
                "work on a copy (e.g. x = x.clone() or x.copy()) and return a new result",
            )
    tests = len(cases)
    if exercise.test is not None:
        test = resolve(exercise.test, f"exercise {exercise.id}: test")
        try:
            test(fn, reference)
        except CheckFailed as err:
            return Outcome("fail", err.message, err.hint or exercise.hint)
        except Exception as err:
            out = _raised(err, "")
            out.hint = exercise.hint if out.status == "fail" else ""
            return out
        tests += 1
    return Outcome("pass", tests=tests)


def check(exercise_id: str, fn: Any) -> Any:
    """Check a student's function; print the verdict; return what the notebook should use.

    Args:
        exercise_id: e.g. ``"01.minmax_scale"``.
        fn: the student's function (or class).

    Returns:
        ``fn`` when it passes, otherwise labkit's reference implementation.
    """
    exercise = get_exercise(exercise_id)
    SUBMITTED[exercise_id] = fn
    outcome = run_tests(exercise, fn)
    RESULTS[exercise_id] = {
        "status": outcome.status,
        "own": outcome.status == "pass",
        "message": outcome.message,
    }
    name = f"{exercise.title} ({exercise_id})"
    fallback = "Using labkit's reference implementation for now, so the rest of the notebook runs."
    if outcome.status == "pass":
        print(f"[PASS] {name}: {outcome.tests} test(s) passed")
    elif outcome.status == "stub":
        print(f"[TODO] {name}: {outcome.message}.\n  {fallback}")
    else:
        print(f"[FAIL] {name}: {outcome.message}")
        if outcome.hint:
            print(f"  Hint: {outcome.hint}")
        print(f"  {fallback}")
    if outcome.status != "pass" and os.environ.get(STRICT_ENV_VAR, "") not in ("", "0"):
        raise CheckError(
            f"check {exercise_id} did not pass and {STRICT_ENV_VAR} is set: {outcome.message}"
        )
    return fn if outcome.status == "pass" else exercise.reference_impl()


def summary() -> str:
    """One line per check run in this kernel (for the end of a notebook); also printed."""
    lines = [f"{v['status'].upper():5} {k}" for k, v in sorted(RESULTS.items())]
    passed = sum(v["status"] == "pass" for v in RESULTS.values())
    lines.append(f"{passed} of {len(RESULTS)} exercise(s) pass with your own code")
    text = "\n".join(lines)
    print(text)
    return text
