"""Hidden tests of lab 06 (FV block, PASPP, deep supervision): the gate and PASPP with other
channel counts, dilations and non-square inputs, judged by their output with labkit's
weights; the deep-supervision loss with other weights, more heads, another base loss, and
its gradient with respect to every head."""

from __future__ import annotations

from typing import Any

import torch

from labkit.checks import CheckFailed, get_exercise
from labkit.exercises.lab06 import build_student_module, fc_layers
from labkit.grade.hidden import Probe, hidden, run_seed
from labkit.grade.hidden._losses import scalar
from labkit.models.init import randomise_batch_norms


def _gate_probe(reference: type, channels: int, shape: tuple[int, ...]) -> Probe:
    def run(cls: Any) -> torch.Tensor:
        torch.manual_seed(0)
        labkit_gate = reference(channels)
        gate = build_student_module(cls, channels, what=f"ContrastGate({channels})")
        probe = torch.randn(
            2, channels, 4, 4, generator=torch.Generator().manual_seed(run_seed("06 65"))
        )
        theirs, mine = fc_layers(labkit_gate, probe), fc_layers(gate, probe)
        if len(mine) != len(theirs):
            raise CheckFailed(
                f"ContrastGate({channels}): expected {len(theirs)} fully connected layers to "
                f"run, yours runs {len(mine)}"
            )
        with torch.no_grad():
            for a, b in zip(theirs, mine):
                if a.weight.numel() != b.weight.numel() or b.bias is None:
                    raise CheckFailed(
                        f"ContrastGate({channels}): a fully connected layer of shape "
                        f"{tuple(b.weight.shape)} where labkit's is {tuple(a.weight.shape)}, "
                        "with a bias"
                    )
                b.weight.copy_(a.weight.reshape(b.weight.shape))
                b.bias.copy_(a.bias)
            f = 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(run_seed("06 66")))
            return gate.eval()(f)

    return Probe(
        f"the gate of ContrastGate({channels}) on a {'x'.join(map(str, shape))} input, with "
        "labkit's weights",
        run,
    )


@hidden("06.ContrastGate")
def contrast_gate_tests():
    ref = get_exercise("06.ContrastGate").reference_impl()
    return [_gate_probe(ref, 12, (3, 12, 3, 7)), _gate_probe(ref, 3, (1, 3, 1, 1))]


def _paspp_probe(reference: type, channels: int, shape: tuple[int, ...], **kwargs: Any) -> Probe:
    what = f"PASPP({channels}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"

    def run(cls: Any) -> torch.Tensor:
        torch.manual_seed(0)
        labkit_paspp = reference(channels, **kwargs)
        randomise_batch_norms(labkit_paspp, seed=7)
        mine = cls(channels, **kwargs)
        mine.load_state_dict(labkit_paspp.state_dict())
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(run_seed("06 67")))
        with torch.no_grad():
            return mine.eval()(x)

    return Probe(
        f"the output of {what} on a {'x'.join(map(str, shape))} input, with labkit's weights",
        run,
        atol=1e-4,
        rtol=1e-3,
    )


@hidden("06.PASPP")
def paspp_tests():
    ref = get_exercise("06.PASPP").reference_impl()
    return [
        _paspp_probe(ref, 8, (1, 8, 7, 10)),
        _paspp_probe(ref, 4, (2, 4, 5, 5), dilations=(1, 3, 5, 7)),
    ]


def _heads(n: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(2, 1, 6, 6, generator=g) > 0.6).float()
    return [2 * torch.randn(2, 1, 6, 6, generator=g) for _ in range(n)], target


def _mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((torch.sigmoid(logits) - target) ** 2).mean()


def _loss_probe(label: str, n: int, **kwargs: Any) -> Probe:
    def run(fn: Any) -> float:
        outs, target = _heads(n, seed=68)
        return float(scalar(fn([o.clone() for o in outs], target, _mse, **kwargs)))

    return Probe(f"the loss of {label} (base loss: MSE of the probabilities)", run)


def _gradients(fn: Any) -> list[torch.Tensor]:
    outs, target = _heads(3, seed=69)
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
