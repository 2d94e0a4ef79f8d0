"""Probes for loss exercises: the value, and the gradient that training would use.

A loss must stay a one-number tensor connected to the logits (a loss computed with
``.item()``, ``float()`` or numpy cannot train a model), so the value probe refuses anything
else with the same words as the notebook's check, and the gradient probe compares
``d loss / d logits`` with the reference's.
"""

from __future__ import annotations

from typing import Any

import torch

from labkit.checks import CheckFailed, describe
from labkit.grade.hidden import Probe


def scalar(got: Any) -> torch.Tensor:
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise CheckFailed(
            "expected a torch tensor holding one number (so that loss.backward() works), got "
            f"{describe(got)}"
        )
    return got


def value_probe(label: str, logits: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> Probe:
    """The loss of ``(logits, target)`` (copies: the loss must not see another's changes)."""

    def run(fn: Any) -> float:
        return float(scalar(fn(logits.clone(), target.clone(), **kwargs)))

    return Probe(f"the loss of {label}", run)


def gradient_probe(label: str, logits: torch.Tensor, target: torch.Tensor) -> Probe:
    """``d loss / d logits`` for ``(logits, target)``."""

    def run(fn: Any) -> torch.Tensor:
        x = logits.clone().requires_grad_(True)
        scalar(fn(x, target.clone())).sum().backward()
        if x.grad is None:
            raise CheckFailed(
                "no gradient reached the logits: the loss must be computed with torch "
                "operations on them, or training cannot change the model"
            )
        return x.grad

    return Probe(
        f"the gradient of the loss with respect to the logits, for {label}", run, atol=1e-6
    )
