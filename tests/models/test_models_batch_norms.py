"""randomise_batch_norms: seeded, non-trivial batch-norm statistics for comparing blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.models.batch_norms import randomise_batch_norms


def test_values_are_the_documented_draws_in_order():
    bn = nn.BatchNorm2d(3)
    assert randomise_batch_norms(nn.Sequential(bn), seed=4, spread=0.2) is not None
    g = torch.Generator().manual_seed(4)
    expected = [0.2 * torch.randn(3, generator=g), 0.5 + torch.rand(3, generator=g),
                0.5 + torch.rand(3, generator=g), 0.2 * torch.randn(3, generator=g)]  # fmt: skip
    got = [bn.running_mean, bn.running_var, bn.weight.detach(), bn.bias.detach()]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_a_randomised_batch_norm_is_no_longer_the_identity_in_eval_mode():
    # a fresh batch norm in eval mode returns its input (up to eps): a misplaced one hides
    x = torch.randn(2, 2, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    bn = nn.BatchNorm3d(2).eval()  # 3-D blocks (lab 07) are covered too
    torch.testing.assert_close(bn(x), x, atol=1e-4, rtol=0)
    randomise_batch_norms(bn, seed=1)
    assert not torch.allclose(bn(x), x, atol=1e-2)
    # the same seed gives the same module in another process (grader vs worker)
    other = randomise_batch_norms(nn.BatchNorm3d(2), seed=1)
    assert torch.equal(other.running_var, bn.running_var)


def test_spread_must_be_positive():
    with pytest.raises(ValueError, match="spread must be > 0"):
        randomise_batch_norms(nn.BatchNorm2d(1), spread=0)
