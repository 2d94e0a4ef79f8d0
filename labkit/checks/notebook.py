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
      ``Exercise``, ``Case`` and the registry are defined in ``labkit.checks.registry``,
      ``compare`` / ``describe`` / ``expect`` in ``labkit.checks.compare``; import them
      from ``labkit.checks``.
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

import os
from dataclasses import dataclass
from typing import Any

from labkit.checks.compare import CheckFailed, describe
from labkit.checks.diagnose import diagnose
from labkit.checks.probes import judge_probe
from labkit.checks.registry import (
    Case,
    Exercise,
    get_exercise,
    resolve,
)
from labkit.checks.verdict import error_text, observe, verdict

__all__ = [
    "RESULTS",
    "STRICT_ENV_VAR",
    "SUBMITTED",
    "CheckError",
    "Outcome",
    "check",
    "run_tests",
    "summary",
]

STRICT_ENV_VAR = "LABKIT_CHECKS_STRICT"

RESULTS: dict[str, dict[str, Any]] = {}
SUBMITTED: dict[str, Any] = {}
FAILURES: dict[str, int] = {}  # exercise id -> failed checks in this kernel (picks the hint)


class CheckError(AssertionError):
    """A check did not pass while ``LABKIT_CHECKS_STRICT`` is set."""


# ---------------------------------------------------------------------------- running
@dataclass
class Outcome:
    """What the tests found: ``status`` is ``"pass"``, ``"fail"`` or ``"stub"``."""

    status: str
    message: str = ""
    hint: str = ""  # the failed test's own hint (or the exercise's)
    tests: int = 0
    diagnosis: str = ""  # what the values show went wrong (``diagnose``), when they show it


def _outcome(status: str, message: str, hint: str, diagnosis: str = "") -> Outcome:
    failed = status == "fail"
    return Outcome(status, message, hint if failed else "", diagnosis=diagnosis if failed else "")


def run_tests(exercise: Exercise, fn: Any, cases: list[Case] | None = None) -> Outcome:
    """Run an exercise's cases (or the given ones), probes and custom test on ``fn``.

    Inputs are deep-copied for every call, so neither side sees the other's changes; a
    function that changes its input in place fails with a message saying so. The verdict
    is ``labkit.checks.verdict.verdict``, the one ``labkit grade`` reaches too.
    """
    if not callable(fn):
        return Outcome("fail", f"expected a function, got {describe(fn)}", exercise.hint)
    reference = exercise.reference_impl()
    cases = exercise.make_cases() if cases is None else cases
    for case in cases:
        label = f"on {case.label}: " if case.label else ""
        expected = observe(reference, case.args, case.kwargs)
        observed = observe(fn, case.args, case.kwargs)
        status, message = verdict(expected, observed, exercise.atol, exercise.rtol)
        if status != "pass":
            text = message if status == "stub" else label + message
            why = diagnose(expected, observed, case.label)
            return _outcome(status, text, exercise.hint, why)
    tests = len(cases)
    for probe in exercise.make_probes():
        observed = observe(probe.run, (fn,))
        if probe.expect is not None:
            expected, observed = judge_probe(probe, reference, observed)
        else:
            expected = observe(probe.run, (reference,))
        status, message = verdict(
            expected,
            observed,
            exercise.atol if probe.atol is None else probe.atol,
            exercise.rtol if probe.rtol is None else probe.rtol,
        )
        if status != "pass":
            hint, why = probe.hint or exercise.hint, diagnose(expected, observed, probe.label)
            if observed["kind"] == "raised" and observed["type"] == "CheckFailed":
                why = observed.get("hint") or why  # the test's own diagnosis
            text = message if status == "stub" else f"{probe.label}: {message}"
            return _outcome(status, text, hint, why)
        tests += 1
    if exercise.test is not None:
        test = resolve(exercise.test, f"exercise {exercise.id}: test")
        try:
            test(fn, reference)
        except CheckFailed as err:
            return Outcome("fail", err.message, exercise.hint, diagnosis=err.hint)
        except Exception as err:  # a student's bug is a verdict, not a crash
            raised = {"kind": "raised", "type": type(err).__name__, "text": error_text(err)}
            status, message = verdict({"kind": "value"}, raised, exercise.atol, exercise.rtol)
            return _outcome(status, message, exercise.hint)
        tests += 1
    return Outcome("pass", tests=tests)


def hint_ladder(exercise: Exercise, hint: str = "", diagnosis: str = "") -> list[str]:
    """The hints for repeated failures, from the first to the most specific (no repeats).

    First ``diagnosis`` (what this failure's values or test show went wrong, when they
    show it: ``labkit.checks.diagnose``), then the exercise's ``hint`` (the idea, in words),
    then ``hint`` (the failed test's own), then the exercise's ``hints``. None of them is
    the solution: the reference code is never printed.
    """
    ladder: list[str] = []
    for text in (diagnosis, exercise.hint, hint, *exercise.hints):
        if text and text not in ladder:
            ladder.append(text)
    return ladder


def fallback_text(function: str) -> str:
    """What a check says when the notebook goes on with labkit's version of ``function``."""
    return (
        f"From here on, `{function}` is labkit's version, not yours, so that the rest of the "
        f"notebook runs. Fix yours, then run its cell and this check again to use your own."
    )


def check(exercise_id: str, fn: Any) -> Any:
    """Check a student's function; print the verdict; return what the notebook should use.

    A failure prints one hint: the exercise's idea on the first failure, a more specific
    one on each later failure of the same check (``hint_ladder``; never the solution).
    When the check does not pass it says, by name, that from here on the notebook uses
    labkit's version of the function, not the student's.

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
    fallback = fallback_text(exercise.function)
    if outcome.status == "pass":
        print(f"[PASS] {name}: {outcome.tests} test(s) passed")
    elif outcome.status == "stub":
        print(f"[TODO] {name}: {outcome.message}.\n  {fallback}")
    else:
        FAILURES[exercise_id] = FAILURES.get(exercise_id, 0) + 1
        ladder = hint_ladder(exercise, outcome.hint, outcome.diagnosis)
        print(f"[FAIL] {name}: {outcome.message}")
        if ladder:
            step = min(FAILURES[exercise_id], len(ladder)) - 1
            more = "  (fails again? a more specific hint follows)" if step + 1 < len(ladder) else ""
            print(f"  Hint: {ladder[step]}{more}")
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
