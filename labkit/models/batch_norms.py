"""Weight set-ups for testing modules, not for training.

`randomise_batch_norms` gives every batch norm non-trivial statistics and affine
parameters. A freshly built batch norm in eval mode is the identity (mean 0, variance 1,
weight 1, bias 0), so a batch norm in the wrong place, or a missing one, would go unseen
when a student's block is compared with labkit's; after this call it changes the output.
The exercise checks (``labkit.exercises``) and the grader's hidden tests use it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["randomise_batch_norms"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def randomise_batch_norms(module: nn.Module, seed: int = 0, spread: float = 0.1) -> nn.Module:
    """Give every batch norm in ``module`` seeded, non-trivial statistics (in place).

    Per batch norm of n features, drawn in this order from one generator seeded with
    ``seed``: running mean ``spread * N(0, 1)``, running variance ``0.5 + U(0, 1)``,
    weight ``0.5 + U(0, 1)``, bias ``spread * N(0, 1)``.

    Args:
        module: any module; its batch norms (1-, 2- and 3-D) are changed in place.
        seed: seeds the draws, so two processes give the same values.
        spread: scale of the means and biases (> 0).

    Returns:
        ``module``, for chaining.

    Raises:
        ValueError: ``spread`` is not > 0.
    """
    if not spread > 0:
        raise ValueError(f"spread must be > 0, got {spread!r}")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _BATCH_NORMS):
                n = m.num_features
                m.running_mean.copy_(spread * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(spread * torch.randn(n, generator=g))
    return module
