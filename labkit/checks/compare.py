"""Comparing a student's result with labkit's, and saying what differs in a student's words.

``compare(got, expected)`` returns ``None`` or one sentence ("expected shape (2, 3), got
shape (3, 2)"); ``expect`` raises ``CheckFailed`` with it, for custom tests; ``describe``
says what a value is. ``labkit.checks`` runs these over an exercise's cases (and re-exports
them: write ``from labkit.checks import compare``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class CheckFailed(AssertionError):
    """Raised by a test when the student's result is wrong; the message is for the student."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_tensor(x: Any) -> bool:
    """True for a torch tensor (checked by type name, so torch is imported only when used)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _kind(x: Any) -> str:
    if is_tensor(x):
        return "a torch tensor"
    if isinstance(x, np.ndarray):
        return "a numpy array"
    if x is None:
        return "None"
    name = type(x).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _as_numpy(x: Any) -> np.ndarray:
    if is_tensor(x):
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


# Above this many elements a value's range is not computed: describing a wrong answer must
# not cost the grader more memory than the answer itself (red team 3, A3).
MAX_DESCRIBED = 2**22


def describe(x: Any) -> str:
    """A short description of a value: kind, shape, dtype and value range."""
    if is_tensor(x) or isinstance(x, np.ndarray):
        a = _as_numpy(x)
        text = f"{_kind(x)} of shape {tuple(a.shape)}, dtype {x.dtype}"
        if a.size > MAX_DESCRIBED:
            return text + f", {a.size:,} values"
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
    if is_tensor(expected) or isinstance(expected, np.ndarray):
        msg = _compare_arrays(got, expected, atol, rtol)
        return where + msg if msg else None
    if isinstance(expected, (numbers.Number, np.number)) and not isinstance(expected, bool):
        if (is_tensor(got) or isinstance(got, np.ndarray)) and np.asarray(_as_numpy(got)).size == 1:
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
