"""COVID-QU-Ex data: find, index, check, decode+cache, batch, augment, preprocess, explore.

Typical use::

    import labkit as lk
    root = lk.data.resolve_data()                     # LABKIT_DATA, kagglehub cache, or phantom
    train = lk.data.load_split(root, "Train", size=256)
    loader = lk.data.BatchLoader(train, 16, augment=lk.data.Augment.report003(), device="cuda")

Names are imported on first use, so ``import labkit.data`` stays light (no torch until needed,
never matplotlib).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "SPLITS": "layout",
    "CLASSES": "layout",
    "SUBSETS": "layout",
    "Record": "layout",
    "index_dataset": "layout",
    "find_subset_dir": "layout",
    "describe_data_location": "locate",
    "resolve_data": "locate",
    "locate_data": "locate",
    "cache_dir": "locate",
    "ensure_phantom": "locate",
    "SegData": "cache",
    "load_split": "cache",
    "Batch": "loader",
    "BatchLoader": "loader",
    "SegDataset": "loader",
    "make_inputs": "loader",
    "Augment": "augment",
    "minmax_scale": "preprocess",
    "imagenet_normalize": "preprocess",
    "one_hot": "preprocess",
    "apply_lung_mask": "preprocess",
    "IMAGENET_MEAN": "preprocess",
    "IMAGENET_STD": "preprocess",
    "check_dataset": "check",
    "CheckReport": "check",
    "Problem": "layout",
    "count_images": "explore",
    "counts_table": "explore",
    "infection_area": "explore",
    "intensity_histograms": "explore",
    "plot_intensity_histograms": "explore",
    "show_grid": "explore",
    "make_phantom": "phantom",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"labkit.data.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labkit.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
