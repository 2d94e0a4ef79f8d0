"""Hidden tests for ``labkit grade``: stricter than a notebook's own checks.

A lab's hidden tests live in ``labkit/grade/hidden/labNN.py``, or in a folder the instructor
controls (``labkit grade --hidden DIR``, files named ``labNN.py`` or ``labNN_*.py``), and
register a test factory per exercise id::

    from labkit.checks import Case
    from labkit.grade.hidden import Probe, hidden

    @hidden("01.minmax_scale")
    def _minmax():
        black = torch.zeros(1, 1, 3, 3)
        return [
            Case((black,), label="an all-black image"),
            Probe("the dtype it returns for a uint8 batch", lambda f: f(black.byte()).dtype),
        ]

A factory returns a list of

* ``Case``: ``fn(*args, **kwargs)`` is compared with the reference's result (the lab's
  ``Exercise.atol/rtol``), and the inputs must come back unchanged;
* ``Probe`` (``labkit.checks.probes``): ``run(obj)`` observes something about the
  student's function or class (an output shape, a parameter count, the exception a bad
  input raises) and that observation is compared with ``run(reference)``, or with
  ``expect(reference, evidence)`` for a module judged with the same weights
  (``labkit.checks.modules.output_probe``).

The notebook's own cases and probes come first (``public=False`` leaves them out), then the hidden ones.
When the instructor's folder registers tests for an exercise, they replace labkit's built-in
hidden tests for it.

Rules, because the grader builds every test twice, in two processes:
    * deterministic given the run's seed: draw random inputs from ``run_rng("a tag")``, a
      generator seeded from a secret the grader draws for each run (so a student cannot
      compute answers for them in advance from this published file), and keep fixed edge
      cases fixed; the same inputs on every call within a run (a test may create temporary
      files, but its expected result must not depend on their path);
    * the expected values are computed in the grader's own process, from the reference; the
      student's process only reports what it observed, so no verdict is reached next to
      student code;
    * a probe must not call the exercise's reference: it does not exist in the student's
      process (a student function that calls it fails, saying so).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.checks.compare import CheckFailed
from labkit.checks.probes import Probe, run_rng, run_seed, set_run_seed
from labkit.checks.registry import Case, Exercise, resolve

BUILTIN = "builtin"
INSTRUCTOR = "instructor"


@dataclass
class _Factory:
    make: Callable[[], list]
    origin: str
    public: bool


# exercise id -> registered factories (from labkit and from the instructor's folder)
HIDDEN: dict[str, list[_Factory]] = {}
_origin = BUILTIN  # set while an instructor's file is imported
_LAB_FILE = re.compile(r"^lab(?P<lab>\d\d)(_[A-Za-z0-9_]+)?\.py$")


def hidden(exercise_id: str, public: bool = True) -> Callable:
    """Register the decorated factory as hidden tests of ``exercise_id``.

    Args:
        exercise_id: e.g. ``"01.minmax_scale"``.
        public: also run the notebook's own cases (before the hidden ones).
    """

    def register(make: Callable[[], list]) -> Callable[[], list]:
        factories = HIDDEN.setdefault(exercise_id, [])
        if not any(f.make is make for f in factories):
            factories.append(_Factory(make, _origin, public))
        return make

    return register


def hidden_files(lab: str, folders: list[str | Path] = ()) -> list[Path]:
    """The instructor's hidden-test files for ``lab`` in ``folders``, sorted by name.

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"hidden tests folder {folder} not found (expected a folder with labNN.py files)"
            )
        for path in sorted(folder.glob("*.py")):
            m = _LAB_FILE.match(path.name)
            if m and m["lab"] == lab:
                found.append(path)
    return found


def load_hidden_tests(lab: str, folders: list[str | Path] = ()) -> list[str]:
    """Import ``labkit.grade.hidden.labNN`` (if it exists) and the instructor's files for ``lab``.

    Returns:
        Where the tests came from (module names and file paths), for the grader's report.
    """
    global _origin
    loaded: list[str] = []
    name = f"{__name__}.lab{lab}"
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
        loaded.append(name)
    # The instructor's tests of this lab are whatever ``folders`` hold now: forget older ones.
    for exercise_id, factories in HIDDEN.items():
        if exercise_id.startswith(f"{lab}."):
            factories[:] = [f for f in factories if f.origin != INSTRUCTOR]
    for path in hidden_files(lab, folders):
        module_name = f"_labkit_hidden_lab{lab}_{len(loaded)}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # for dataclasses and pickling inside the file
        _origin = INSTRUCTOR
        try:
            spec.loader.exec_module(module)
        finally:
            _origin = BUILTIN
        loaded.append(str(path))
    return loaded


def _custom_test(exercise: Exercise) -> Probe:
    """The exercise's own ``test(student, reference)`` as a probe whose observation is a verdict."""
    test = resolve(exercise.test, f"exercise {exercise.id}: test")
    reference = exercise.reference_impl()  # bound now: the student's process blocks it later

    def verdict(obj: Any) -> str:
        try:
            test(obj, reference)
        except CheckFailed as err:
            return err.message
        return "passed"

    return Probe("the notebook's own test", verdict, verdict=True)


def exercise_tests(exercise: Exercise) -> list[Case | Probe]:
    """Every test the grader runs for ``exercise``: the notebook's own, then the hidden ones."""
    factories = HIDDEN.get(exercise.id, [])
    if any(f.origin == INSTRUCTOR for f in factories):
        factories = [f for f in factories if f.origin == INSTRUCTOR]
    public = all(f.public for f in factories)
    tests: list[Case | Probe] = []
    if public:
        tests += exercise.make_cases() + exercise.make_probes()
        if exercise.test is not None:
            tests.append(_custom_test(exercise))
    for factory in factories:
        for item in factory.make():
            if isinstance(item, (Case, Probe)):
                tests.append(item)
            elif isinstance(item, tuple):
                tests.append(Case(args=item))
            else:
                raise TypeError(
                    f"hidden tests of {exercise.id}: expected Case or Probe items, got "
                    f"{type(item).__name__}"
                )
    return tests


def describe_test(test: Case | Probe, number: int) -> str:
    """A test's label for feedback ("an empty mask"), or "test 3" when it has none."""
    return test.label or f"test {number}"


__all__ = [
    "HIDDEN",
    "Probe",
    "describe_test",
    "hidden",
    "hidden_files",
    "load_hidden_tests",
    "exercise_tests",
    "run_rng",
    "run_seed",
    "set_run_seed",
]
