"""Probes: tests that observe something about the student's function or class.

A ``Case`` calls the student's function on fixed inputs; a ``Probe`` runs code of its own on
the student's object (``run(obj)``: an output shape, a parameter count, a loss's gradient)
and its observation is compared with the same observation of labkit's reference. The
notebook's ``check`` and ``labkit grade`` judge probes with the same rule (``judge_probe``):

* a plain probe: ``run(student)`` against ``run(reference)``. ``run`` never calls the
  reference itself, so ``labkit grade`` can run it on the student's object in a sandboxed
  process where the reference does not exist, and on the reference in its own process;
* a probe with ``expect``: what to expect depends on what the student's object is, e.g.
  an ``nn.Module`` judged with the same weights in labkit's module
  (``labkit.checks.modules``). ``run(student)`` returns ``{"evidence": e, "value": v}``;
  the expected value is ``expect(reference, e)``, computed where the reference lives, and
  compared with ``v``. ``expect`` raises ``CheckFailed`` when the evidence itself is wrong
  (the layers do not match labkit's), and must treat the evidence as untrusted data.

``run`` may raise ``CheckFailed`` with a message for the student when it can tell without
the reference that something is wrong ("no gradient reaches the logits"): that only ever
fails the student, so it is safe to decide next to student code.

Random inputs come from ``run_rng(tag)`` / ``run_seed(tag)``: the seed ``labkit grade``
draws in secret for each run (0 in a notebook), mixed with a tag per test.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.checks.compare import CheckFailed

EVIDENCE, VALUE = "evidence", "value"


@dataclass(frozen=True)
class Probe:
    """An observation of the student's object, compared with the same observation of the reference.

    Args:
        label: what is observed, in a student's words ("the output shape for a 3x64x64 input").
        run: ``run(obj) -> value``; ``obj`` is the student's function/class or the reference.
            Return plain values (numbers, strings, tuples, lists, dicts, arrays, tensors).
            An exception it raises is part of the observation: both sides must raise the same
            exception type; a ``CheckFailed`` it raises is shown to the student as it is.
        atol, rtol: tolerances for comparing the observations (default: the exercise's).
        verdict: the observation is already a verdict, ``"passed"`` or a message for the
            student (an instructor's own ``test=``); reached in the student's process, so
            weaker than an observation compared by the grader: give such exercises other
            probes too.
        points: this test's weight for partial credit (as ``Case.points``).
        expect: ``expect(reference, evidence) -> expected value``, for probes whose ``run``
            returns ``{"evidence": ..., "value": ...}`` (see the module docstring).
        hint: said to the student when this probe fails (more specific than the
            exercise's hint).
    """

    label: str
    run: Callable[[Any], Any]
    atol: float | None = None
    rtol: float | None = None
    verdict: bool = False
    points: float | None = None
    expect: Callable[[Any, Any], Any] | None = None
    hint: str = ""


def report(evidence: Any, value: Any) -> dict:
    """What ``run`` of a probe with ``expect`` returns."""
    return {EVIDENCE: evidence, VALUE: value}


def judge_probe(probe: Probe, reference: Any, observed: dict) -> tuple[dict, dict]:
    """The expected and the observed observation of ``probe``, ready for ``verdict``.

    Args:
        probe: a probe with ``expect`` (a plain probe's expected observation is simply that
            of ``run(reference)``; nothing to do here).
        reference: labkit's function or class (only where it may exist: the notebook's
            kernel, or the grader's own process).
        observed: the student's observation of ``run(student)``: ``{"kind": "value",
            "value": {"evidence": ..., "value": ...}}`` or ``{"kind": "raised", ...}``.

    Returns:
        ``(expected, observed)``: a student whose evidence ``expect`` refuses is observed
        as having raised that ``CheckFailed``; any other error while reading the evidence
        (it comes from the student's process) is a failure too, never a crash.
    """
    if observed["kind"] != "value":
        return {"kind": "value"}, observed
    got = observed["value"]
    if not isinstance(got, dict) or set(got) != {EVIDENCE, VALUE}:
        return {"kind": "value"}, _failed("the probe's report did not come back in its form")
    try:
        expected = probe.expect(reference, got[EVIDENCE])
    except CheckFailed as err:
        return {"kind": "value"}, _failed(err.message)
    except Exception as err:  # noqa: BLE001 (the evidence is untrusted data)
        return {"kind": "value"}, _failed(f"what your code reported could not be read ({err})")
    return {"kind": "value", "value": expected}, {**observed, "value": got[VALUE]}


def _failed(message: str) -> dict:
    return {"kind": "raised", "type": "CheckFailed", "text": message}


# ---------------------------------------------------------------------------- random inputs
_run_seed = 0  # set by the grader (secret, per run) and by its workers (from their job)


def set_run_seed(seed: int) -> None:
    """The seed ``run_rng`` draws from (the grader's per-run secret)."""
    global _run_seed
    _run_seed = int(seed)


def run_seed(tag: str) -> int:
    """A seed for test inputs (e.g. ``torch.Generator().manual_seed(run_seed("01 x"))``):
    the run's seed mixed with ``tag``."""
    return int(
        np.random.SeedSequence([_run_seed, zlib.crc32(tag.encode("utf-8"))]).generate_state(1)[0]
    )


def run_rng(tag: str) -> np.random.Generator:
    """A random generator for test inputs: the run's seed and ``tag`` (one tag per test)."""
    return np.random.default_rng([_run_seed, zlib.crc32(tag.encode("utf-8"))])
