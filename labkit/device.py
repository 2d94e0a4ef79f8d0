"""Device choice, mixed precision (AMP), channels_last and seeding.

Nothing here runs at import time: no GPU probing, no seeding. Call the functions.

AMP policy (``amp_dtype``):
  * CUDA with compute capability >= 8.0 (A100, L4, H100, RTX 30xx+): ``bfloat16``, no
    GradScaler needed (bf16 has fp32's exponent range).
  * CUDA below 8.0 (T4 = 7.5, V100 = 7.0): ``float16`` with a GradScaler. torch may report
    bf16 as "supported" on a T4, but it is emulated and slow, so we never pick it there.
  * CPU and Apple MPS: no AMP (fp32). CPU autocast exists but rarely speeds up convolutions.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
from collections.abc import Iterator
from typing import Any

import torch

DEVICE_ENV_VAR = "LABKIT_DEVICE"
# glibc's mallopt parameters (malloc.h) and the values keep_freed_memory sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit: a 256 px batch of 32 is 8 MiB
_TRIM_THRESHOLD = 256 * 2**20
_kept_freed_memory: bool | None = None  # None: not asked yet
_VALID_DEVICES = ("cuda", "mps", "cpu")


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """Choose where to run: ``prefer`` or ``LABKIT_DEVICE`` if given, else cuda, mps, cpu.

    Args:
        prefer: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``, ``"auto"`` or ``None``.

    Returns:
        The ``torch.device`` to use.

    Raises:
        ValueError: an unknown device name, or one that is not available here.
    """
    if isinstance(prefer, torch.device):
        prefer = str(prefer)
    source = "argument 'device'"
    if prefer is None or prefer == "auto":
        env = os.environ.get(DEVICE_ENV_VAR)
        if env and env != "auto":
            prefer, source = env, f"environment variable {DEVICE_ENV_VAR}"
        else:
            prefer = None
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = prefer.split(":")[0]
    if kind not in _VALID_DEVICES:
        raise ValueError(
            f"unknown device {prefer!r} (from {source}); expected one of "
            f"{', '.join(_VALID_DEVICES)} or 'auto'"
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {prefer!r} (from {source}) asked for, but CUDA is not available here. "
            "On Colab: Runtime > Change runtime type > GPU. Or use device='cpu'."
        )
    if kind == "mps" and not _mps_available():
        raise ValueError(f"device {prefer!r} (from {source}) asked for, but MPS is not available")
    return torch.device(prefer)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def decide_amp(device_type: str, capability: tuple[int, int] | None = None) -> torch.dtype | None:
    """The AMP dtype for a device type and CUDA compute capability (pure decision logic).

    Args:
        device_type: ``"cuda"``, ``"mps"`` or ``"cpu"``.
        capability: CUDA compute capability ``(major, minor)``; required for ``"cuda"``.

    Returns:
        ``torch.bfloat16``, ``torch.float16`` or ``None`` (no autocast).
    """
    if device_type != "cuda":
        return None
    if capability is None:
        raise ValueError("decide_amp: capability=(major, minor) is required for device 'cuda'")
    return torch.bfloat16 if tuple(capability) >= (8, 0) else torch.float16


def amp_dtype(device: str | torch.device, enabled: bool = True) -> torch.dtype | None:
    """The AMP dtype labkit uses on ``device`` (``None`` when AMP is off or pointless)."""
    device = torch.device(device)
    if not enabled:
        return None
    capability = None
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
    return decide_amp(device.type, capability)


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 do not need it."""
    return dtype == torch.float16


def make_grad_scaler(device: str | torch.device, dtype: torch.dtype | None) -> Any:
    """A ``torch.amp.GradScaler``, enabled only when ``dtype`` is float16."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(dtype))


@contextlib.contextmanager
def autocast(device: str | torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is None."""
    device = torch.device(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def channels_last(obj: Any) -> Any:
    """Convert a 4-D tensor or a module to channels_last memory format.

    On tensor-core GPUs convolutions in NHWC (channels_last) avoid layout transposes and are
    usually faster under AMP. On CPU it is harmless. Other tensors are returned unchanged.
    """
    if isinstance(obj, torch.nn.Module):
        return obj.to(memory_format=torch.channels_last)
    if isinstance(obj, torch.Tensor) and obj.dim() == 4:
        return obj.contiguous(memory_format=torch.channels_last)
    return obj


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (CPU and all GPUs). Never called at import.

    Args:
        seed: the seed.
        deterministic: also ask torch for deterministic algorithms (slower on GPU).

    Returns:
        The seed, for logging.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return seed


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "COLAB_RELEASE_TAG" in os.environ or "COLAB_GPU" in os.environ


def device_facts(device: str | torch.device | None = None) -> dict[str, Any]:
    """What ``labkit info`` prints about the device: name, memory, AMP, capability."""
    dev = pick_device(device)
    facts: dict[str, Any] = {"device": str(dev), "gpu": None, "gpu_memory_gb": None}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        facts["gpu"] = props.name
        facts["gpu_memory_gb"] = round(props.total_memory / 1024**3, 1)
        facts["capability"] = ".".join(map(str, torch.cuda.get_device_capability(dev)))
    elif dev.type == "mps":
        facts["gpu"] = "Apple MPS"
    dtype = amp_dtype(dev)
    facts["amp"] = "none (fp32)" if dtype is None else str(dtype).replace("torch.", "")
    if needs_grad_scaler(dtype):
        facts["amp"] += " + GradScaler"
    facts["cuda_available"] = torch.cuda.is_available()
    return facts


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees, instead of handing it back to the system.

    Every CPU batch is a few fresh multi-MB tensors. glibc's malloc serves those from
    ``mmap`` and returns them when freed, so the next batch's tensors fault in every 4 KiB
    page again: on the 2-core VM that was ~5,000 page faults and about a third of the time
    of a 256 px batch of 32 with report 003's augmentation (benchmarks/RESULTS.md, 1.1).
    Here blocks up to 32 MiB come from the heap and up to 256 MiB of freed memory stays
    with the process, so later batches reuse pages already mapped. The cost: the process
    may keep up to 256 MiB it no longer uses. Intel's PyTorch CPU guide gets the same
    effect by swapping in jemalloc or tcmalloc; this needs no new library.

    Process-wide, once (later calls return the first answer). Does nothing on a C library
    other than glibc, or when the user set ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_`` themselves. ``BatchLoader`` calls it when it builds batches
    on the CPU.

    Returns:
        Whether the setting is in force.
    """
    global _kept_freed_memory
    if _kept_freed_memory is None:
        _kept_freed_memory = _set_malloc_thresholds()
    return _kept_freed_memory


def _set_malloc_thresholds() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False  # the user's own choice wins
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success; setting the mmap threshold also stops glibc's own
    # adjustment of both thresholds, so the two values stay as set.
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
