"""How observations cross from a worker (student code) to the grader: JSON plus ``.npz``.

A worker ``encode``s what the student's code returned into a JSON tree whose arrays and
tensors go to an ``.npz`` file (numeric dtypes only); the grader ``decode``s it with
``allow_pickle=False``, so nothing a student's process writes can run code in the grader.
A value that cannot cross (a module, a generator, ...) arrives as an ``Opaque`` description
and never equals anything.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.checks.compare import describe, is_tensor
from labkit.grade.bounded import loads_bounded

MAX_TEXT = 2000  # characters kept of any string a student's process reports
MAX_RESULT_BYTES = 64 * 2**20  # observations one exercise may report, as a file
MAX_UNPACKED_BYTES = 256 * 2**20  # ... and once decompressed (the zip's own sizes are checked)
MAX_ARRAYS = 10_000
MAX_META_BYTES = 16 * 2**20  # the JSON part of one exercise's observations
MAX_META_ITEMS = 200_000  # ... and the values in it (a lab's tests report a few hundred)


# Torch dtypes ``encode`` stores as float32 arrays (numpy has no such type); every other
# tensor arrives in its own dtype, so decoding never widens an array.
_UPCAST = ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2")


def encode(x: Any, arrays: dict, depth: int = 0) -> dict:
    """A JSON tree for ``x``; arrays and tensors go to ``arrays`` (numeric dtypes only)."""
    if depth > 20:
        return {"t": "opaque", "desc": "a value nested more than 20 levels deep"}
    if is_tensor(x):
        t = x.detach().cpu()
        dtype = str(t.dtype)
        if dtype in _UPCAST:
            t = t.float()
        try:
            a = t.numpy()
        except (TypeError, RuntimeError):
            return {"t": "opaque", "desc": describe(x)[:MAX_TEXT]}
        key = f"a{len(arrays)}"
        arrays[key] = a
        return {"t": "torch", "dtype": dtype, "k": key}
    if isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind in "biufc":
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(x)
        return {"t": "numpy" if isinstance(x, np.ndarray) else "npscalar", "k": key}
    if x is None or type(x) in (bool, int):
        return {"t": "json", "v": x}
    if type(x) is float:
        return {"t": "float", "v": repr(x)}
    if type(x) is str:
        return {"t": "json", "v": x[:MAX_TEXT]}
    if isinstance(x, (list, tuple)):
        return {
            "t": type(x).__name__ if type(x) in (list, tuple) else "list",
            "v": [encode(v, arrays, depth + 1) for v in x],
        }
    if isinstance(x, dict) and all(isinstance(k, (str, int)) for k in x):
        return {
            "t": "dict",
            "k": list(x),
            "v": [encode(v, arrays, depth + 1) for v in x.values()],
        }
    try:
        desc = describe(x)
    except BaseException:  # noqa: BLE001 (a student's __repr__ may raise)
        desc = f"a {type(x).__name__}"
    return {"t": "opaque", "desc": desc[:MAX_TEXT]}


class Opaque:
    """A value that cannot cross processes (a module, a generator, ...): only its description."""

    def __init__(self, desc: str) -> None:
        self.desc = desc

    def __repr__(self) -> str:
        return self.desc


def has_opaque(value: Any) -> bool:
    if isinstance(value, Opaque):
        return True
    if isinstance(value, (list, tuple)):
        return any(map(has_opaque, value))
    if isinstance(value, dict):
        return any(map(has_opaque, value.values()))
    return False


def decode(tree: Any, arrays: Any, depth: int = 0, used: set | None = None) -> Any:
    """Rebuild a value from ``encode``'s tree; raises on malformed input.

    Each array may be used once and a tensor must keep its array's dtype (or be one of the
    types stored as float32), so what is decoded is never larger than what was sent.
    """
    used = set() if used is None else used
    kind = tree["t"]
    if depth > 25:
        raise ValueError("too deep")
    if kind == "json":
        if tree["v"] is not None and type(tree["v"]) not in (bool, int, str):
            raise ValueError("bad json leaf")
        return tree["v"]
    if kind == "float":
        return float(tree["v"])
    if kind in ("numpy", "npscalar", "torch"):
        key = str(tree["k"])
        if key in used:
            raise ValueError("an array referenced twice")
        used.add(key)
        a = arrays[key]
        if kind == "npscalar":
            return a[()]
        if kind == "numpy":
            return a
        name = str(tree["dtype"])
        dtype = getattr(torch, name.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError("bad dtype")
        tensor = torch.from_numpy(a)
        if name in _UPCAST and tensor.dtype == torch.float32:
            return tensor.to(dtype)
        if tensor.dtype != dtype:
            raise ValueError(f"a {name} tensor sent as {tensor.dtype}")
        return tensor
    if kind in ("list", "tuple"):
        items = [decode(v, arrays, depth + 1, used) for v in tree["v"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: decode(v, arrays, depth + 1, used) for k, v in zip(tree["k"], tree["v"])}
    if kind == "opaque":
        return Opaque(str(tree["desc"])[:500])
    raise ValueError(f"unknown kind {kind!r}")


def read_regular_file(path: Path, limit: int) -> tuple[bytes | None, str]:
    """``(bytes, "")`` or ``(None, why)``: only a regular file, never through a link, capped.

    Opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` on the open file, so a
    link, a named pipe (which would block a plain ``open`` forever) or a device is refused,
    and nothing can swap the file between the check and the read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if os.path.islink(path):
            return None, f"{path.name} is a symbolic link; submit the notebook file itself"
        return None, f"the file could not be read ({err.strerror or err})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, f"{path.name} is not a regular file (a folder, pipe or device)"
        if info.st_size > limit:
            return (
                None,
                f"the file is {info.st_size / 2**20:.0f} MB; the limit is {limit / 2**20:.0f} MB",
            )
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(2**20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            return None, f"the file is larger than {limit / 2**20:.0f} MB"
        return b"".join(chunks), ""
    except OSError as err:
        return None, f"the file could not be read ({err.strerror or err})"
    finally:
        os.close(fd)


MAX_DIRECTORY_BYTES = MAX_ARRAYS * 128  # a zip's central directory: ~60 bytes per array


def _check_directory(data: bytes) -> None:
    """Refuse a zip whose central directory (which ``zipfile`` parses whole, entry by entry)
    is larger than ``MAX_ARRAYS`` arrays need, or that is a zip64 (never sent here)."""
    tail = data[-(2**16 + 22) :]
    at = tail.rfind(b"PK\x05\x06")  # the end-of-central-directory record
    if at < 0 or len(tail) - at < 22:
        raise ValueError("results are not a zip archive")
    entries = int.from_bytes(tail[at + 10 : at + 12], "little")
    size = int.from_bytes(tail[at + 12 : at + 16], "little")
    if entries > MAX_ARRAYS or size > MAX_DIRECTORY_BYTES or entries == 0xFFFF:
        raise ValueError("results hold too many entries")


def read_observations(data: bytes) -> dict:
    """A worker's observations (``.npz`` bytes from its pipe): size-capped as sent and once
    decompressed, no pickles, the JSON bounded in size, values and depth; raises on
    anything else."""
    if len(data) > MAX_RESULT_BYTES:
        raise ValueError("results too large")
    _check_directory(data)  # before zipfile reads it: every entry there becomes an object
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS or sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ValueError("results too large once decompressed")
        # Stored, never compressed (np.savez): what the grader holds is then no larger than
        # what was sent (red team 3, A3: 250 KB of savez_compressed became 240 MiB).
        if any(m.compress_type != zipfile.ZIP_STORED for m in members):
            raise ValueError("results are compressed (the worker sends them stored)")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = loads_bounded(
        arrays.pop("__meta__").tobytes(), max_bytes=MAX_META_BYTES, max_items=MAX_META_ITEMS
    )
    if not isinstance(meta, dict) or not isinstance(meta.get("observations"), list):
        raise ValueError("results not in their form")
    used: set = set()
    for obs in meta["observations"]:
        if isinstance(obs, dict) and obs.get("kind") == "value":
            obs["value"] = decode(obs["value"], arrays, used=used)
            if "inputs_after" in obs:
                obs["inputs_after"] = decode(obs["inputs_after"], arrays, used=used)
    return meta
