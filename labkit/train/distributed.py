"""Training in several processes started by ``torchrun`` (PyTorch's DistributedDataParallel).

`labkit.train.fit` calls `join` first: in a process that torchrun started (``WORLD_SIZE`` >
1 in the environment) it joins the process group torchrun describes, so a script or
``labkit train`` runs unchanged under ``torchrun --nproc-per-node N``. Then:

* each process (a *rank*) trains on its own shard of every epoch's seeded order
  (``BatchLoader.shard``, like ``DistributedSampler.set_epoch``): together the ranks see
  every training image once per epoch;
* ``DistributedDataParallel`` averages the gradients, so every rank takes the same step;
  ``torch.distributed.algorithms.Join`` lets a rank whose shard has one batch fewer finish;
* validation runs on shards too and the per-image counts are gathered (`gather_rows`), so
  every rank computes the same metrics, the same early-stopping decision and the same best
  epoch; only rank 0 prints and writes files.

The batch size is per process: the effective batch is ``batch_size * world_size``.
On CPUs the backend is gloo (in a container set ``MASTER_ADDR=127.0.0.1`` and
``GLOO_SOCKET_IFNAME=lo``), on GPUs NCCL with one GPU per process (``LOCAL_RANK``).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def join(device_type: str) -> Ranks:
    """This process's `Ranks`, joining torchrun's process group on first use.

    Args:
        device_type: ``"cuda"`` selects the NCCL backend, anything else gloo.

    Returns:
        ``Ranks()`` (rank 0 of 1) outside torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Ranks()
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    atexit.register(_leave)
    return Ranks(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))


def _leave() -> None:
    """At exit: wait for every rank (rank 0 may still be writing checkpoints), then leave.
    A rank that tore its group down while a peer was still connected died in gloo with
    "terminate called without an active exception" (SIGABRT; seen once in CI)."""
    if dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError:  # a peer is gone already: nothing to wait for
            pass
        dist.destroy_process_group()


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` under torchrun; other devices as they are."""
    if ranks.distributed and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    return device


def wrap(model: nn.Module, device: torch.device, ranks: Ranks) -> nn.Module:
    """``DistributedDataParallel(model)`` under torchrun (it copies rank 0's weights to every
    rank now and averages gradients in ``backward``); the model itself otherwise."""
    if not ranks.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sync_buffers(model: nn.Module, ranks: Ranks) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank.

    Each rank updates its running statistics from its own batches; after an epoch they
    differ slightly, and validation and checkpoints must see one model.
    """
    if ranks.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def gather_rows(rows: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Concatenate every rank's ``rows`` (N_r, ...) in rank order (a CPU tensor)."""
    rows = rows.detach().cpu()
    if not ranks.distributed:
        return rows
    parts: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(parts, rows)
    return torch.cat(parts)


def agree(value: Any, ranks: Ranks) -> Any:
    """Rank 0's ``value`` on every rank (e.g. a decision taken from rank 0's clock)."""
    if not ranks.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(loader: Any, ranks: Ranks, what: str, required: bool) -> Any:
    """This rank's part of ``loader`` (``loader.shard(rank, world_size)``, a new loader).

    Raises:
        ValueError: under torchrun ``loader`` cannot be sharded and ``required`` is set.
    """
    if not ranks.distributed:
        return loader
    if hasattr(loader, "shard"):
        return loader.shard(ranks.rank, ranks.world_size)
    if required:
        raise ValueError(
            f"{what}: under torchrun (world size {ranks.world_size}) fit needs a loader with "
            f"shard(rank, world_size), such as labkit.data.BatchLoader, so that each process "
            f"trains on its own part of every epoch; got {type(loader).__name__}"
        )
    return loader
