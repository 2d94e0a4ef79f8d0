"""What a model's output means: the one home of the head rule and the deep-supervision rule.

* **Head rule.** A 1-channel head is a sigmoid head: its channel is the infection logit z.
  A 2-channel head (report 002's softmax head) has channel 1 = infection, and since
  ``softmax(l)[1] == sigmoid(l1 - l0)`` exactly, its infection logit is ``z = l1 - l0``.
  Losses (`labkit.losses`), metrics (`labkit.metrics.probabilities`), the cascade's lung
  mask and evaluation all go through `infection_logits` / `infection_probability`.
* **Deep-supervision rule.** A deep-supervision model in training mode returns a list of
  full-resolution logits whose element 0 is the final output (`final_output`).

This module imports nothing from labkit, so any module may import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["final_output", "infection_logits", "infection_probability"]


def _shape(x: object) -> str:
    return f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__


def final_output(out: Tensor | Sequence[Tensor]) -> Tensor:
    """The final output of a model: ``out`` itself, or element 0 of a deep-supervision list.

    Args:
        out: a logits tensor, or ``[final, aux_1, ..., aux_k]`` (deep supervision).

    Returns:
        The final logits tensor.

    Raises:
        ValueError: ``out`` is an empty list.
    """
    if isinstance(out, (list, tuple)):
        if not out:
            raise ValueError("logits: got an empty list (expected [final, aux_1, ...])")
        return out[0]
    return out


def infection_logits(logits: Tensor) -> Tensor:
    """The infection logit z of either head: sigmoid(z) is the infection probability.

    Args:
        logits: (B, 1, H, W) sigmoid logits, returned as they are, or (B, 2, H, W) softmax
            logits, for which z = l1 - l0 because softmax(l)[1] = sigmoid(l1 - l0).

    Returns:
        (B, 1, H, W) tensor.

    Raises:
        ValueError: ``logits`` is not a 4-D tensor with 1 or 2 channels.
    """
    if not (isinstance(logits, Tensor) and logits.ndim == 4 and logits.shape[1] in (1, 2)):
        raise ValueError(
            "logits must have shape (B, 1|2, H, W): 1 or 2 channels (sigmoid or softmax "
            f"head), got {_shape(logits)}"
        )
    return logits if logits.shape[1] == 1 else logits[:, 1:2] - logits[:, 0:1]


def infection_probability(logits: Tensor | Sequence[Tensor]) -> Tensor:
    """Infection probability of either head (and of a deep-supervision list's final output).

    Half-precision logits (AMP) are widened to float32 first, so sums over probabilities
    cannot overflow.

    Args:
        logits: (B, 1|2, H, W) float logits, or a deep-supervision list of them.

    Returns:
        (B, 1, H, W) probabilities in [0, 1], float32 (or wider).

    Raises:
        ValueError: not float logits of shape (B, 1|2, H, W).
    """
    logits = final_output(logits)
    if not (isinstance(logits, Tensor) and logits.is_floating_point()):
        raise ValueError(f"logits must be a float tensor (B, 1|2, H, W), got {_shape(logits)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return torch.sigmoid(infection_logits(logits))
