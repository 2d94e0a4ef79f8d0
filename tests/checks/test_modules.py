"""labkit.checks.modules / probes: module exercises judged with the same weights on both sides,
without copying anything from labkit's module into the student's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.checks.modules import output_probe, seeded_values, shape_probe
from labkit.checks.probes import judge_probe
from labkit.checks.verdict import observe, verdict
from labkit.models.blocks import DoubleConv


def _judge(probe, student, reference=DoubleConv) -> tuple[str, str]:
    expected, observed = judge_probe(probe, reference, observe(probe.run, (student,)))
    return verdict(expected, observed, probe.atol, probe.rtol)


class ForwardDoubleConv(nn.Module):
    """DoubleConv written with a forward, biases on, other attribute names."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(c_in, c_out, 3, padding="same"), nn.BatchNorm2d(c_out)
        self.c, self.d = nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.d(self.c(torch.relu(self.b(self.a(x))))))


class ZeroWeightsNoMiddleRelu(ForwardDoubleConv):
    """The middle ReLU missing; with its own all-zero convolutions that would not show."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out)
        for conv in (self.a, self.c):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.d(self.c(self.b(self.a(x)))))


def test_seeded_values_are_a_function_of_role_parameter_and_shape_only():
    a = seeded_values(7, "Conv2d 3x3 #0", "weight", (4, 2, 3, 3))
    assert torch.equal(a, seeded_values(7, "Conv2d 3x3 #0", "weight", (4, 2, 3, 3)))
    assert not torch.equal(a, seeded_values(7, "Conv2d 3x3 #1", "weight", (4, 2, 3, 3)))
    assert not torch.equal(a, seeded_values(8, "Conv2d 3x3 #0", "weight", (4, 2, 3, 3)))
    assert a.abs().max() <= 1 / (2 * 3 * 3) ** 0.5  # PyTorch's default bound, 1/sqrt(fan_in)
    # a Linear (out, in) and a 1x1 convolution (out, in, 1, 1) get the same numbers
    fc = seeded_values(1, "fc #0", "weight", (3, 5))
    assert torch.equal(fc, seeded_values(1, "fc #0", "weight", (3, 5, 1, 1)).reshape(3, 5))
    var = seeded_values(1, "bn", "running_var", (100,))
    assert var.min() >= 0.5 and var.max() <= 1.5


def test_any_way_of_writing_the_block_passes():
    probe = output_probe("DoubleConv", (2, 3, 7, 5), 3, 4, tag="t")
    assert _judge(probe, DoubleConv) == ("pass", "")
    assert _judge(probe, ForwardDoubleConv) == ("pass", "")  # biases, padding="same"


def test_the_students_own_weights_cannot_hide_a_wrong_forward():
    probe = output_probe("DoubleConv", (2, 3, 7, 5), 3, 4, tag="t")
    status, message = _judge(probe, ZeroWeightsNoMiddleRelu)
    assert status == "fail" and "wrong values" in message


def test_a_missing_layer_is_named():
    class OneConv(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    status, message = _judge(output_probe("DoubleConv", (1, 3, 6, 6), 3, 4, tag="t"), OneConv)
    assert status == "fail"
    assert "expected these layers to run: 2 x 3x3 convolution, 2 x batch norm; yours runs: " \
        "1 x 3x3 convolution" in message  # fmt: skip


@pytest.mark.parametrize(
    "evidence",
    [None, "text", [1, 2], {"Conv2d 3x3 #0": "x"}, {str(i): {} for i in range(10_000)}],
)
def test_evidence_from_a_hostile_process_fails_and_never_crashes(evidence):
    probe = output_probe("DoubleConv", (1, 3, 6, 6), 3, 4, tag="t")
    forged = {"kind": "value", "value": {"evidence": evidence, "value": torch.zeros(1, 4, 6, 6)}}
    expected, observed = judge_probe(probe, DoubleConv, forged)
    assert verdict(expected, observed, 1e-4, 1e-3)[0] == "fail"


def test_a_report_not_in_the_probes_form_fails():
    probe = output_probe("DoubleConv", (1, 3, 6, 6), 3, 4, tag="t")
    expected, observed = judge_probe(probe, DoubleConv, {"kind": "value", "value": 3})
    assert verdict(expected, observed, 1e-4, 1e-3)[0] == "fail"


def test_the_fc_and_state_dict_layouts():
    from labkit.exercises.lab06 import ContrastGate
    from labkit.models.fvpaspp import PASPP

    class ConvGate(nn.Module):  # 1x1 convolutions for the fully connected layers
        def __init__(self, c: int) -> None:
            super().__init__()
            self.f1, self.f2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, 1, 1)

        def forward(self, f: torch.Tensor) -> torch.Tensor:
            g = f.mean((2, 3), keepdim=True)
            return torch.sigmoid(self.f2(torch.relu(self.f1(g))))

    gate = output_probe("ContrastGate", (2, 6, 3, 3), 6, tag="g", layout="fc", scale=3.0)
    assert _judge(gate, ConvGate, ContrastGate) == ("pass", "")
    paspp = output_probe("PASPP", (1, 8, 5, 6), 8, tag="p", layout="state_dict")
    assert _judge(paspp, PASPP, PASPP) == ("pass", "")


def test_shape_probe_in_training_mode():
    probe = shape_probe("DoubleConv", (2, 5, 9, 11), 5, 7, tag="s", train=True)
    assert probe.run(DoubleConv) == (2, 7, 9, 11)
