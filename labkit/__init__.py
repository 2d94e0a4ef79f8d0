"""labkit: a Jupyter course kit for COVID-19 infection segmentation on chest X-rays.

Students write ``import labkit as lk`` and then use short helpers such as
``lk.setup(...)``, ``lk.data.load_split(...)``, ``lk.build_model("unet")`` or ``lk.fit(...)``.
Instructor-only packages (``labkit.course``, ``labkit.grade``, ``labkit.bench``) are not in
this namespace; import them by name.

Importing labkit is deliberately light: submodules (and torch, matplotlib, ipywidgets)
are imported the first time you touch them, and nothing is seeded or probed at import.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Submodules reachable as attributes (lk.data, lk.models, ...), imported on first use.
_SUBMODULES = (
    "checks",
    "data",
    "device",
    "evaluation",
    "exercises",
    "losses",
    "metrics",
    "models",
    "plots",
    "runs",
    "train",
    "widgets",
)

# Short names for the helpers students call most: name -> (module, attribute).
_SHORTCUTS = {
    "setup": ("course.setup", "setup"),
    "get_profile": ("runs", "get_profile"),
    "pick_device": ("device", "pick_device"),
    "seed_everything": ("device", "seed_everything"),
    "build_model": ("models", "build_model"),
    "load_model": ("train.checkpoint", "load_model"),
    "fit": ("train", "fit"),
    "evaluate": ("evaluation", "evaluate"),
    "TrainConfig": ("train", "TrainConfig"),
}

__all__ = ["__version__", *_SUBMODULES, *_SHORTCUTS]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"labkit.{name}")
        globals()[name] = module
        return module
    if name in _SHORTCUTS:
        module_name, attr = _SHORTCUTS[name]
        value = getattr(importlib.import_module(f"labkit.{module_name}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
