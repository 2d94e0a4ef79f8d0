"""The one pass/fail verdict: an observation of the student's code against the reference's.

Both sides are *observations* in the same plain form, so the notebook's ``check`` (both
calls in one kernel) and ``labkit grade`` (the student's call in a sandboxed worker, the
reference's in the grader) reach their verdicts with the same function:

* ``{"kind": "value", "value": v, "changed_input": bool}``: the call returned ``v``
  (``changed_input``: an array or tensor argument was modified in place);
* ``{"kind": "raised", "type": "ValueError", "text": "..."}``: the call raised.

``observe`` makes one from a call in this process; ``verdict`` compares two.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from labkit.checks.compare import CheckFailed, compare, describe, is_tensor

STUB = "not implemented yet (your code still raises NotImplementedError)"
CHANGED_INPUT = (
    "your function changed its input in place; work on a copy (e.g. x = x.clone() or "
    "x.copy()) and return a new result"
)


def changed(after: Any, before: Any) -> bool:
    """True when an array or tensor inside ``after`` differs from its copy in ``before``."""
    if is_tensor(before) or isinstance(before, np.ndarray):
        return compare(after, before, 0.0, 0.0) is not None
    if isinstance(before, Mapping):
        return any(changed(after[k], before[k]) for k in before)
    if isinstance(before, (list, tuple)):
        return len(after) != len(before) or any(map(changed, after, before))
    return False  # other objects: no meaningful equality to compare


def observe(fn: Callable, args: tuple = (), kwargs: Mapping | None = None) -> dict:
    """Call ``fn`` on deep copies of the inputs; what it returned or raised, as an observation."""
    kwargs = dict(kwargs or {})
    a, k = copy.deepcopy(args), copy.deepcopy(kwargs)
    try:
        value = fn(*a, **k)
    except Exception as err:  # a student's bug is an observation, not a crash
        raised = {"kind": "raised", "type": type(err).__name__, "text": error_text(err)}
        if isinstance(err, CheckFailed) and err.hint:  # a test's own, more specific hint
            raised["hint"] = err.hint
        return raised
    return {"kind": "value", "value": value, "changed_input": changed((a, k), (args, kwargs))}


def error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip().rstrip(":")


def verdict(expected: dict, observed: dict, atol: float, rtol: float) -> tuple[str, str]:
    """``("pass", "")``, ``("stub", why)`` or ``("fail", why)`` in a student's words.

    Args:
        expected: the reference's observation.
        observed: the student's observation of the same call.
        atol, rtol: tolerances for numbers, arrays and tensors (``compare``).

    Returns:
        The status and, unless it passed, one sentence saying what differs. A raised
        ``CheckFailed`` (a custom test's own explanation) is shown as it is; raising the
        same exception type as the reference passes; ``NotImplementedError`` is a stub.
    """
    if observed["kind"] == "raised":
        kind, text = str(observed["type"]), str(observed["text"])
        if kind == "CheckFailed":
            return "fail", text.removeprefix("CheckFailed: ")
        if expected["kind"] == "raised" and kind == expected["type"]:
            return "pass", ""
        if kind == "NotImplementedError":
            return "stub", STUB
        return "fail", f"your function raised {text}"
    if expected["kind"] == "raised":
        got = describe(observed["value"])
        return "fail", f"expected your function to raise {expected['type']}, it returned {got}"
    message = compare(observed["value"], expected["value"], atol, rtol)
    if message:
        return "fail", message
    if observed.get("changed_input"):
        return "fail", CHANGED_INPUT
    return "pass", ""
