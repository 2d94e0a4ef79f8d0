"""How observations cross from a worker (student code) to the grader: JSON plus ``.npz``.

A worker ``encode``s what the student's code returned into a JSON tree whose arrays and
tensors go to an ``.npz`` file (numeric dtypes only); the grader ``decode``s it with
``allow_pickle=False``, so nothing a student's process writes can run code in the grader.
A value that cannot cross (a module, a generator, ...) arrives as an ``Opaque`` description
and never equals anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.checks.compare import describe, is_tensor

MAX_TEXT = 2000  # characters kept of any string a student's process reports
MAX_RESULT_BYTES = 256 * 2**20  # observations one exercise may report


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def encode(x: Any, arrays: dict, depth: int = 0) -> dict:
    """A JSON tree for ``x``; arrays and tensors go to ``arrays`` (numeric dtypes only)."""
    if depth > 20:
        return {"t": "opaque", "desc": "a value nested more than 20 levels deep"}
    if is_tensor(x):
        t = x.detach().cpu()
        dtype = str(t.dtype)
        if dtype in ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"):
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


def decode(tree: Any, arrays: Any, depth: int = 0) -> Any:
    """Rebuild a value from ``labkit.grade.worker.encode``'s tree (raises on malformed input)."""
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
        a = arrays[str(tree["k"])]
        if kind == "npscalar":
            return a[()]
        if kind == "numpy":
            return a
        dtype = getattr(torch, str(tree["dtype"]).removeprefix("torch."))
        if not isinstance(dtype, torch.dtype):
            raise ValueError("bad dtype")
        return torch.from_numpy(a.copy()).to(dtype)
    if kind in ("list", "tuple"):
        items = [decode(v, arrays, depth + 1) for v in tree["v"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: decode(v, arrays, depth + 1) for k, v in zip(tree["k"], tree["v"])}
    if kind == "opaque":
        return Opaque(str(tree["desc"])[:500])
    raise ValueError(f"unknown kind {kind!r}")


def read_observations(path: Path) -> dict:
    """A worker's ``NN.npz`` (size-checked, no pickles)."""
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise ValueError("results too large")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    for obs in meta["observations"]:
        if obs["kind"] == "value":
            obs["value"] = decode(obs["value"], arrays)
    return meta
