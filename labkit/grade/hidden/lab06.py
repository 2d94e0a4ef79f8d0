"""Hidden tests of lab 06 (FV block, PASPP, deep supervision): the gate and PASPP with other
channel counts, dilations and non-square inputs, judged by their output with the
same weights as labkit's; the deep-supervision loss with other weights, more heads, another base loss, and
its gradient with respect to every head."""

from __future__ import annotations

from typing import Any

import torch

from labkit.checks import CheckFailed
from labkit.checks.losses import scalar
from labkit.checks.modules import output_probe
from labkit.grade.hidden import Probe, hidden, run_seed


@hidden("06.ContrastGate")
def contrast_gate_tests():
    return [
        output_probe("ContrastGate", shape, c, tag=f"06 h gate {c}", layout="fc", scale=3.0)
        for c, shape in ((12, (3, 12, 3, 7)), (3, (1, 3, 1, 1)))
    ]


@hidden("06.PASPP")
def paspp_tests():
    return [
        output_probe("PASPP", (1, 8, 7, 10), 8, tag="06 h paspp", layout="state_dict"),
        output_probe("PASPP", (2, 4, 5, 5), 4, tag="06 h paspp dil", layout="state_dict",
                     dilations=(1, 3, 5, 7)),
    ]  # fmt: skip


def _heads(n: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(2, 1, 6, 6, generator=g) > 0.6).float()
    return [2 * torch.randn(2, 1, 6, 6, generator=g) for _ in range(n)], target


def _mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((torch.sigmoid(logits) - target) ** 2).mean()


def _loss_probe(label: str, n: int, **kwargs: Any) -> Probe:
    seed = run_seed(f"06 68 {n}")  # the run's secret seed

    def run(fn: Any) -> float:
        outs, target = _heads(n, seed=seed)
        return float(scalar(fn([o.clone() for o in outs], target, _mse, **kwargs)))

    return Probe(f"the loss of {label} (base loss: MSE of the probabilities)", run)


def _gradients(fn: Any) -> list[torch.Tensor]:
    outs, target = _heads(3, seed=run_seed("06 69"))
    outs = [o.requires_grad_(True) for o in outs]
    scalar(fn(outs, target, _mse, final_weight=0.6)).sum().backward()
    if any(o.grad is None for o in outs):
        raise CheckFailed("no gradient reached every head: each output must be in the loss")
    return [o.grad for o in outs]


@hidden("06.deep_supervision_loss")
def deep_supervision_tests():
    return [
        _loss_probe("a final output and 1 auxiliary head, final_weight=0.25", 2, final_weight=0.25),
        _loss_probe("a final output and 5 auxiliary heads", 6),
        Probe(
            "the gradients with respect to the final output and 2 auxiliary heads "
            "(final_weight=0.6)",
            _gradients,
            atol=1e-6,
        ),
    ]
