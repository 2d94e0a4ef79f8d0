"""labkit: a Jupyter course kit for COVID-19 infection segmentation on chest X-rays.

Students write ``import labkit as lk`` and then use short helpers such as
``lk.data.load_split(...)``, ``lk.models.build_model("unet")`` or ``lk.train.fit(...)``.

Importing labkit is deliberately light: submodules (and torch, matplotlib, ipywidgets)
are imported the first time you touch them, and nothing is seeded or probed at import.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Submodules reachable as attributes (lk.data, lk.models, ...), imported on first use.
_SUBMODULES = (
    "checkpoint",
    "build",
    "checks",
    "course",
    "course_setup",
    "data",
    "device",
    "evaluate",
    "exercises",
    "losses",
    "metrics",
    "models",
    "plots",
    "profiles",
    "reports",
    "train",
    "widgets",
)

# Short names for the helpers students call most: name -> (module, attribute).
_SHORTCUTS = {
    "get_profile": ("profiles", "get_profile"),
    "pick_device": ("device", "pick_device"),
    "seed_everything": ("device", "seed_everything"),
    "build_model": ("models", "build_model"),
    "load_model": ("checkpoint", "load_model"),
    "fit": ("train", "fit"),
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
