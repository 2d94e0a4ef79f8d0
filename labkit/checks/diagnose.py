"""What a wrong answer's values say about the mistake, in a student's words.

``verdict`` says *what* differs ("expected values in [0.18, 0.31], got [0.545, 0.576]");
``diagnose`` says, when the two results show it, *why*: the student's values are the
sigmoid of the expected ones (a sigmoid in ``forward``), 255 times them (0/255 masks), a
whole-number multiple of them (a sum where a mean was asked), NaN where a number was
expected (a division by zero), an extra dimension of size 1, float64 for float32, or a
wrong answer on a case about empty masks. The notebook's ``check`` and ``labkit grade``
both show the diagnosis as the first hint, before the exercise's own ladder of hints.

Only the two observations are used (the grader has no more), so a diagnosis is a pattern
that fits these numbers exactly (within tolerance), never a guess from one number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labkit.checks.compare import is_tensor

_TOL = dict(rtol=1e-3, atol=1e-5)  # "the same numbers", looser than a verdict's tolerance


def _array(x: Any) -> np.ndarray | None:
    """``x`` as a float64 array when it is an array, a tensor or a number, else None."""
    if is_tensor(x):
        x = x.detach().cpu().float().numpy()
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (int, float, np.number, np.ndarray)):
        a = np.asarray(x)
        return a.astype(np.float64) if a.dtype.kind in "fiub" else None
    return None


def _numel(x: Any) -> int:
    """How many elements ``x`` holds (1 for a number), read from its shape, nothing copied."""
    return int(np.prod(getattr(x, "shape", ()) or (1,)))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.size > 0 and bool(np.allclose(a, b, **_TOL))


def _values(got: np.ndarray, exp: np.ndarray) -> str:
    """A diagnosis from values of the same shape (both finite where compared)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if _same(got, 1 / (1 + np.exp(-exp))) and not _same(got, exp):
            return (
                "your values are the sigmoid of the expected ones: the expected result is raw "
                "scores (logits), so leave the sigmoid out here (the loss or the prediction "
                "step applies it)"
            )
        if _same(exp, 1 / (1 + np.exp(-got))) and not _same(got, exp):
            return (
                "the expected values are the sigmoid of yours: the result should be "
                "probabilities in [0, 1], so apply a sigmoid to the scores"
            )
        if np.any(exp != 0):
            for factor, why in ((255.0, "255 times"), (1 / 255.0, "1/255 of")):
                if _same(got, exp * factor):
                    return (
                        f"your values are {why} the expected ones: masks are stored as 0/255 "
                        "on disk and used as 0/1 here; check which scale the input and the "
                        "result are on"
                    )
        if _same(got, 1 - exp) and not _same(got, exp):
            return (
                "your values are 1 minus the expected ones: foreground and background (or "
                "a score and its complement) are swapped"
            )
        if got.size == 1 and exp.size == 1 and exp.item() != 0 and got.item() != 0:
            ratio = got.item() / exp.item()
            for r, more in ((ratio, True), (1 / ratio, False)):
                k = round(r)
                if k >= 2 and abs(r - k) <= 1e-3 * k:
                    return (
                        f"your result is {'exactly ' + str(k) + ' times' if more else '1/' + str(k) + ' of'} "
                        "the expected one: check the reduction (a sum where a mean is "
                        "asked, or the mean over other elements or axes)"
                    )
    return ""


def _shapes(got: np.ndarray, exp: np.ndarray) -> str:
    if got.squeeze().shape == exp.squeeze().shape and got.size == exp.size:
        return (
            f"your result has shape {got.shape} where {exp.shape} is expected: the same "
            "values with a dimension of size 1 added or dropped (squeeze, unsqueeze or keepdim)"
        )
    if sorted(got.shape) == sorted(exp.shape) and got.ndim > 1:
        return (
            f"your result has shape {got.shape} where {exp.shape} is expected: the axes are in "
            "another order (PyTorch images are (N, C, H, W), numpy images (H, W))"
        )
    return ""


def _dtype(got: Any, exp: Any) -> str:
    g, e = str(getattr(got, "dtype", "")), str(getattr(exp, "dtype", ""))
    if g.endswith("float64") and e.endswith("float32"):
        return (
            "your result is float64 where float32 is expected: numpy computes in float64 "
            "unless told otherwise (.astype(np.float32), or dtype=np.float32 when creating)"
        )
    if (
        e
        and g
        and g != e
        and e.endswith(("float32", "float64"))
        and not g.startswith(("float", "torch.float"))
    ):
        return f"your result is {g} where {e} is expected: the result should be floating point"
    return ""


def diagnose(expected: dict, observed: dict, label: str = "") -> str:
    """Why ``observed`` is wrong, when its values show it; ``""`` when they do not.

    Args:
        expected: the reference's observation (``labkit.checks.verdict.observe``'s form).
        observed: the student's observation of the same call.
        label: the case's label ("two empty masks"), used for the empty-mask diagnosis.

    Returns:
        One sentence for the student (no code), or ``""``.
    """
    if expected.get("kind") != "value" or observed.get("kind") != "value":
        return ""
    got_raw, exp_raw = observed.get("value"), expected.get("value")
    # Work bounded by the expected value's size (the grader's own): a student's answer of
    # another size is never copied or cast (red team 3, A3).
    if np.size(getattr(got_raw, "shape", ())) and _numel(got_raw) > max(16, 4 * _numel(exp_raw)):
        return ""
    got, exp = _array(got_raw), _array(exp_raw)
    if got is None or exp is None:
        return ""
    if got.shape != exp.shape:
        return _shapes(got, exp)
    bad_got, bad_exp = ~np.isfinite(got), ~np.isfinite(exp)
    if np.any(bad_got & ~bad_exp):
        return (
            "your result has NaN or infinity where a number is expected: a division by zero? "
            "Look at what the exercise says happens when there is nothing to count"
        )
    if np.any(bad_exp & ~bad_got):
        return (
            "the expected result is NaN where yours is a number: the exercise asks for NaN "
            "in this case (nothing to score), not a made-up value"
        )
    if "empty" in label.lower():  # the case is about the empty-mask rule: that comes first
        return (
            f"this case has an empty mask ({label}): re-read the exercise's rule for what the "
            "result is when there is nothing to find"
        )
    text = _values(got, exp) if not bad_exp.any() else ""
    return text or _dtype(got_raw, exp_raw)
