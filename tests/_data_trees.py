"""Helpers shared by the data tests: write small, real COVID-QU-Ex-style trees of PNG files.

Not a mock: these are genuine 8-bit PNG files on disk, in the real folder layout, with the
real naming style (spaces and parentheses), so the loader reads them exactly as it would read
the Kaggle data. tests/data/test_data_trees.py checks that they follow the layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from labkit.data.layout import CLASSES, SPLITS, SUBSETS

# Real-style names: "covid_1579.png", "non_COVID (11905).png", "Normal (1).png".
NAME_STYLE = {
    "COVID-19": "covid_{}.png",
    "Non-COVID": "non_COVID ({}).png",
    "Normal": "Normal ({}).png",
}


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    """Write ``array`` as a PNG at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode=mode).save(path)
    return path


def sample_arrays(
    rng: np.random.Generator, size: int, cls: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey image, its lung mask and infection mask (0/255), geometry derived from the image."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    lung = ((xx - 0.3) ** 2 / 0.02 + (yy - 0.5) ** 2 / 0.09 < 1) | (
        (xx - 0.7) ** 2 / 0.02 + (yy - 0.5) ** 2 / 0.09 < 1
    )
    infection = np.zeros_like(lung)
    if cls == "COVID-19":
        cy, cx = 0.5 + rng.uniform(-0.1, 0.1), rng.choice([0.3, 0.7])
        infection = lung & ((xx - cx) ** 2 + (yy - cy) ** 2 < rng.uniform(0.005, 0.015))
    image = 60 + 100 * lung - 40 * lung * (1 - infection) + rng.normal(0, 5, lung.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, (lung * 255).astype(np.uint8), (infection * 255).astype(np.uint8)


def make_tree(
    root: Path,
    subsets: tuple[str, ...] = ("infection",),
    per_class: int = 2,
    size: int = 32,
    seed: int = 0,
    splits: tuple[str, ...] = SPLITS,
    classes: tuple[str, ...] = CLASSES,
) -> Path:
    """Write ``root/<Subset>/<Subset>/<Split>/<Class>/{images,lung masks,infection masks}/*.png``."""
    rng = np.random.default_rng(seed)
    for subset in subsets:
        base = root / SUBSETS[subset] / SUBSETS[subset]
        for split in splits:
            for cls in classes:
                folder = base / split / cls
                for k in range(per_class):
                    name = NAME_STYLE[cls].format(k + 1)
                    image, lung, infection = sample_arrays(rng, size, cls)
                    write_png(folder / "images" / name, image)
                    write_png(folder / "lung masks" / name, lung)
                    if subset == "infection":
                        write_png(folder / "infection masks" / name, infection)
    return root


def subset_dir(root: Path, subset: str = "infection") -> Path:
    return root / SUBSETS[subset] / SUBSETS[subset]
