"""Exercise checks: ``check`` prints ``[PASS]`` or what was expected and what came back.

``check`` (running an exercise's tests in a notebook) is in ``labkit.checks.notebook``; the
``Exercise`` / ``Case`` records and the registry in ``labkit.checks.registry``; comparing a
result with the expected value (``compare``, ``describe``, ``expect``) in
``labkit.checks.compare``; probes (tests with code of their own) in ``labkit.checks.probes``,
with the ones for ``nn.Module`` and loss exercises in ``labkit.checks.modules`` and
``labkit.checks.losses``. Students call ``lk.checks.check(...)`` and ``lk.checks.summary()``.
"""

from labkit.checks.compare import CheckFailed, compare, describe, expect
from labkit.checks.notebook import (
    RESULTS,
    STRICT_ENV_VAR,
    SUBMITTED,
    CheckError,
    Outcome,
    check,
    run_tests,
    summary,
)
from labkit.checks.probes import Probe, run_rng, run_seed
from labkit.checks.registry import (
    COURSE_EXERCISES_MODULE,
    EXERCISE_MODULES_ENV_VAR,
    EXERCISES,
    Case,
    Exercise,
    get_exercise,
    lab_exercises,
    register,
    resolve,
)

__all__ = [
    "COURSE_EXERCISES_MODULE",
    "EXERCISES",
    "EXERCISE_MODULES_ENV_VAR",
    "RESULTS",
    "STRICT_ENV_VAR",
    "SUBMITTED",
    "Case",
    "CheckError",
    "CheckFailed",
    "Exercise",
    "Outcome",
    "Probe",
    "check",
    "compare",
    "describe",
    "expect",
    "get_exercise",
    "lab_exercises",
    "register",
    "resolve",
    "run_rng",
    "run_seed",
    "run_tests",
    "summary",
]
