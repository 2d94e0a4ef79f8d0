"""What an exercise is (``Exercise``, ``Case``) and the registry of them (``EXERCISES``).

The course's exercises are registered by ``labkit.exercises``, imported on the first lookup
of an unknown id, and by any module named in ``LABKIT_EXERCISE_MODULES`` (comma-separated;
for an instructor's own labs). References and cases may be import-path strings
(``"labkit.data.preprocess:minmax_scale"``) resolved only when used. Everything here is
re-exported by ``labkit.checks``.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.checks.probes import Probe

EXERCISE_MODULES_ENV_VAR = "LABKIT_EXERCISE_MODULES"
COURSE_EXERCISES_MODULE = "labkit.exercises"
_ID = re.compile(r"^\d\d\.[A-Za-z_][A-Za-z0-9_]*$")

EXERCISES: dict[str, Exercise] = {}
_loaded_modules = False


@dataclass(frozen=True)
class Case:
    """One input to try: ``fn(*args, **kwargs)``; ``label`` says it in words ("a 2x3 image").

    ``points``: for ``labkit grade`` only, this test's weight when the exercise gives partial
    credit (set on any of its tests; the others weigh 1). Default: all or nothing.
    """

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    points: float | None = None


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
        probes: a callable (or ``"module:attr"``) returning a list of ``Probe``
            (``labkit.checks.probes``): tests with code of their own, such as an
            ``nn.Module`` block's output with the same weights (``labkit.checks.modules``)
            or a loss's gradient (``labkit.checks.losses``). They never call the reference,
            so ``labkit grade`` runs them where labkit's reference does not exist.
        test: ``test(student, reference)`` raising ``CheckFailed``, run after the cases and
            probes. It needs the reference next to the student's code, so ``labkit grade``
            cannot make the reference absent from that process: prefer ``probes``.
        absent: more ``"module:attr"`` paths that ``labkit grade`` removes, with the
            reference, from the copy of labkit a student's process imports: library code
            that would solve the exercise (``"labkit.metrics:dice"`` for a Dice exercise).
        points: marks for ``labkit grade``.
        hint: printed after the first failure: the idea, in words, never the code.
        hints: more specific hints, printed after the 2nd, 3rd, ... failure of the same
            check in one kernel (the last one repeats); still not the solution.
        atol, rtol: tolerances for comparing numbers.
    """

    id: str
    title: str
    function: str
    reference: str | Callable
    cases: str | Callable[[], list[Case]] | None = None
    probes: str | Callable[[], list[Probe]] | None = None
    test: str | Callable[[Any, Any], None] | None = None
    absent: tuple[str, ...] = ()
    points: float = 1.0
    hint: str = ""
    hints: tuple[str, ...] = ()
    atol: float = 1e-5
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"exercise id {self.id!r} must look like '01.name'")
        if not self.function.isidentifier():
            raise ValueError(f"exercise {self.id}: function {self.function!r} is not a name")
        if self.cases is None and self.probes is None and self.test is None:
            raise ValueError(f"exercise {self.id}: give cases=, probes= or test=")
        if isinstance(self.hints, str) or not all(isinstance(h, str) for h in self.hints):
            raise ValueError(f"exercise {self.id}: hints must be a tuple of strings")
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

    def make_probes(self) -> list[Probe]:
        if self.probes is None:
            return []
        probes = resolve(self.probes, f"exercise {self.id}: probes")()
        for p in probes:
            if not isinstance(p, Probe):
                raise TypeError(f"exercise {self.id}: probes must be Probe, got {type(p).__name__}")
        return list(probes)


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


def register(exercise: Exercise, replace: bool = False) -> Exercise:
    """Add an exercise to ``EXERCISES``; registering the same definition twice is harmless."""
    old = EXERCISES.get(exercise.id)
    if old is not None and old != exercise and not replace:
        raise ValueError(f"exercise {exercise.id!r} is already registered with another definition")
    EXERCISES[exercise.id] = exercise
    return exercise


def _load_exercise_modules() -> None:
    """Import the modules that register exercises (once per process, once they all import)."""
    global _loaded_modules
    if _loaded_modules:
        return
    try:
        importlib.import_module(COURSE_EXERCISES_MODULE)
    except ModuleNotFoundError as err:
        if err.name != COURSE_EXERCISES_MODULE:
            raise
    extra = os.environ.get(EXERCISE_MODULES_ENV_VAR, "")
    for name in filter(None, (n.strip() for n in extra.split(","))):
        importlib.import_module(name)
    # Only now: a failed import above must be tried again on the next lookup, not skipped.
    _loaded_modules = True


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
