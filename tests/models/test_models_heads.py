"""The head rule and the deep-supervision rule, in their one home (labkit.models.heads)."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.models.heads import final_output, infection_logits, infection_probability


def test_two_channel_logits_become_l1_minus_l0_and_softmax_channel_1():
    logits = torch.tensor([0.0, 2.0, 1.0, -3.0]).reshape(1, 2, 1, 2)  # l0 = (0, 2), l1 = (1, -3)
    z = infection_logits(logits)
    assert z.shape == (1, 1, 1, 2) and z.flatten().tolist() == [1.0, -5.0]
    p = infection_probability(logits).flatten().tolist()
    assert p == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(5))])
    torch.testing.assert_close(infection_probability(logits), torch.softmax(logits, 1)[:, 1:2])


def test_one_channel_logits_are_the_infection_logit():
    logits = torch.tensor([[[[0.0, math.log(3)]]]])
    assert infection_logits(logits) is logits
    assert infection_probability(logits).flatten().tolist() == pytest.approx([0.5, 0.75])
    assert infection_probability(logits.half()).dtype == torch.float32  # AMP outputs widen


def test_final_output_is_element_0_of_a_deep_supervision_list():
    final, aux = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    assert final_output([final, aux]) is final and final_output(final) is final
    assert infection_probability([final, aux]).unique().tolist() == [0.5]
    with pytest.raises(ValueError, match="empty list"):
        final_output([])


def test_other_shapes_are_refused_naming_what_was_expected():
    with pytest.raises(ValueError, match=r"\(B, 1\|2, H, W\): 1 or 2 channels"):
        infection_logits(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="float tensor"):
        infection_probability(torch.zeros(1, 1, 2, 2, dtype=torch.long))
