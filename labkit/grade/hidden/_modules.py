"""Probes for exercises that are ``nn.Module`` classes: behaviour, not source.

A block is judged as the notebook's check judges it (``labkit.exercises.lab02``): labkit's
module is built, its weights are copied into the student's role by role, and the student's
output on a fixed input is the observation. Run on the reference itself, the same probe
gives the expected output; both sides are seeded, so the two processes agree.
"""

from __future__ import annotations

from typing import Any

import torch

from labkit.exercises.lab02 import build, copy_weights
from labkit.grade.hidden import Probe
from labkit.models.init import randomise_batch_norms


def _make(obj: Any, reference: Any, what: str, args: tuple, kwargs: dict, ref_kwargs: dict):
    return build(obj, *args, what=what, **(ref_kwargs if obj is reference else kwargs))


def output_probe(
    reference: type,
    name: str,
    x_shape: tuple[int, ...],
    *args: Any,
    ref_kwargs: dict | None = None,
    **kwargs: Any,
) -> Probe:
    """The output of ``cls(*args, **kwargs)`` on a fixed input, with labkit's weights copied in.

    Args:
        reference: labkit's class (captured now: the student's process blocks it later).
        name: the student's class name, for messages.
        x_shape: the input's shape.
        ref_kwargs: keyword arguments for labkit's class when they differ from the student's.
    """
    ref_kwargs = {**kwargs, **(ref_kwargs or {})}
    what = name + _call_text(args, kwargs)

    def run(obj: Any) -> torch.Tensor:
        x = torch.randn(*x_shape, generator=torch.Generator().manual_seed(11))
        torch.manual_seed(0)
        labkit_module = reference(*args, **ref_kwargs)
        randomise_batch_norms(labkit_module, seed=5, spread=0.2)
        module = _make(obj, reference, what, args, kwargs, ref_kwargs)
        copy_weights(labkit_module, module, x, what=what)
        with torch.no_grad():
            return module.eval()(x)

    return Probe(
        f"the output of {what} on a {_shape_text(x_shape)} input, with labkit's weights",
        run,
        atol=1e-4,
        rtol=1e-3,
    )


def train_shape_probe(
    reference: type, name: str, x_shape: tuple[int, ...], *args: Any, **kwargs: Any
) -> Probe:
    """The output shape of ``cls(*args, **kwargs)`` in training mode (batch statistics)."""
    what = name + _call_text(args, kwargs)

    def run(obj: Any) -> tuple[int, ...]:
        x = torch.randn(*x_shape, generator=torch.Generator().manual_seed(12))
        torch.manual_seed(0)
        module = _make(obj, reference, what, args, kwargs, kwargs)
        return tuple(module.train()(x).shape)

    return Probe(
        f"the output shape of {what} in training mode on a {_shape_text(x_shape)} input", run
    )


def _call_text(args: tuple, kwargs: dict) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"({', '.join(parts)})"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
