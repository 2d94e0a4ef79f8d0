"""Probes for loss exercises: the value, and the gradient that training would use.

A loss must stay a one-number tensor connected to what it is computed from (a loss computed
with ``.item()``, ``float()``, numpy or ``torch.tensor(...)`` cannot train a model). The
value probe refuses anything else, saying why, and the gradient probe compares
``d loss / d input`` with labkit's for every tensor of the first argument (the logits, or a
list of outputs for a deep-supervision loss). Neither calls labkit's loss: the grader runs
each on the student's function and on labkit's in different processes.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from labkit.checks.compare import CheckFailed, describe
from labkit.checks.probes import Probe
from labkit.checks.registry import Case

SCALAR_HINT = "compute with torch operations and do not call .item() or float() on the result"


def scalar(got: Any) -> torch.Tensor:
    """``got`` if it is a one-number tensor; otherwise ``CheckFailed`` saying what it is."""
    if got is None:
        raise CheckFailed("your function returned None; did you forget `return`?")
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            "expected a torch tensor holding one number (so that loss.backward() works), got "
            f"{describe(got)}",
            SCALAR_HINT,
        )
    if got.numel() != 1:
        raise CheckFailed(
            f"expected one number (a tensor of shape ()), got a tensor of shape {tuple(got.shape)}",
            "average over the pixels (and images) with .mean()",
        )
    return got


def _with_grad(case: Case) -> tuple[list[torch.Tensor], tuple, dict]:
    """Copies of a case's inputs whose first argument (a tensor or a list of them) needs grad."""
    args, kwargs = copy.deepcopy(case.args), copy.deepcopy(dict(case.kwargs))
    first = args[0]
    leaves = [
        t.clone().requires_grad_(True) for t in ([first] if torch.is_tensor(first) else first)
    ]
    args = (leaves[0] if torch.is_tensor(first) else leaves, *args[1:])
    return leaves, args, kwargs


def value_probe(case: Case) -> Probe:
    """The loss of ``case`` as one number (inputs copied: no call sees another's changes)."""

    def run(fn: Any) -> float:
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(dict(case.kwargs))
        return float(scalar(fn(*args, **kwargs)))

    return Probe(f"the loss of {case.label}", run, points=case.points)


def gradient_probe(case: Case) -> Probe:
    """``d loss / d x`` for each tensor ``x`` of the case's first argument."""

    def run(fn: Any) -> list[torch.Tensor]:
        leaves, args, kwargs = _with_grad(case)
        got = scalar(fn(*args, **kwargs))
        if not got.requires_grad:
            raise CheckFailed(
                "no gradient reaches the logits: your loss has the right value but is not "
                "connected to them, so loss.backward() cannot train the model",
                "compute the loss with torch operations on the logits all the way; .item(), "
                "float(), numpy or torch.tensor(...) cut the connection",
            )
        grads = torch.autograd.grad(got.sum(), leaves, allow_unused=True)
        for i, g in enumerate(grads):
            if g is None:
                what = "the logits" if len(leaves) == 1 else f"output no. {i + 1} of the list"
                raise CheckFailed(
                    f"no gradient reaches {what}: it is not part of your loss",
                    "every output passed in must contribute to the loss",
                )
        return list(grads)

    return Probe(
        f"the gradient of the loss for {case.label}", run, atol=1e-6, rtol=1e-4, points=case.points
    )


def loss_probes(cases: list[Case]) -> list[Probe]:
    """A value probe and a gradient probe for each case."""
    return [p for case in cases for p in (value_probe(case), gradient_probe(case))]
