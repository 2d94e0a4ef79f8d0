"""Lab 01 helpers: counts per split and class, infection area, intensity histograms, image grids.

Numbers come back as plain dicts (easy to print, check and test); the ``plot_*`` / ``show_*``
functions draw them with matplotlib, which is imported inside them only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from labkit.data.cache import SegData
from labkit.data.layout import CLASSES, IMAGE_SUFFIX, IMAGES, SPLITS, find_subset_dir


def count_images(root: str | Path, subset: str = "infection") -> dict[str, dict[str, int]]:
    """Image files per split and class, counted on disk: ``{split: {class: n}}``.

    Counts the PNGs in each ``images`` folder (a missing folder counts 0). It does not check
    pairing with masks: ``labkit data check`` does that.
    """
    base = find_subset_dir(root, subset)
    table: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        table[split] = {}
        for cls in CLASSES:
            folder = base / split / cls / IMAGES
            n = (
                sum(1 for p in folder.iterdir() if p.suffix.lower() == IMAGE_SUFFIX)
                if folder.is_dir()
                else 0
            )
            table[split][cls] = n
    return table


def counts_table(counts: dict[str, dict[str, int]], title: str = "") -> str:
    """Format ``{split: {class: n}}`` as a text table with totals (split x class)."""
    classes = [c for c in CLASSES if any(c in row for row in counts.values())]
    width = max([len(c) for c in classes] + [7])
    lines = [title] if title else []
    lines.append(
        f"{'split':<6}" + "".join(f"{c:>{width + 2}}" for c in classes) + f"{'total':>{width + 2}}"
    )
    col_totals = dict.fromkeys(classes, 0)
    for split, row in counts.items():
        cells = [row.get(c, 0) for c in classes]
        for c, n in zip(classes, cells):
            col_totals[c] += n
        lines.append(
            f"{split:<6}"
            + "".join(f"{n:>{width + 2}}" for n in cells)
            + f"{sum(cells):>{width + 2}}"
        )
    totals = [col_totals[c] for c in classes]
    lines.append(
        f"{'total':<6}"
        + "".join(f"{n:>{width + 2}}" for n in totals)
        + f"{sum(totals):>{width + 2}}"
    )
    return "\n".join(lines)


def infection_area(data: SegData) -> dict[str, dict[str, float]]:
    """Infection area per class.

    Returns:
        ``{class: {"images", "with_infection", "area_fraction", "lung_fraction"}}`` where
        ``area_fraction`` is the mean fraction of image pixels marked infected and
        ``lung_fraction`` the mean fraction of lung pixels marked infected.
    """
    if data.infection is None:
        raise ValueError(f"data: the {data.subset!r} subset has no infection masks")
    inf = data.infection.flatten(1).float()
    lung = data.lung.flatten(1).float()
    area = inf.mean(dim=1)
    in_lung = (inf * lung).sum(1) / lung.sum(1).clamp_min(1)
    out: dict[str, dict[str, float]] = {}
    for cls in CLASSES:
        idx = [i for i, c in enumerate(data.classes) if c == cls]
        if not idx:
            continue
        sel = torch.tensor(idx)
        out[cls] = {
            "images": len(idx),
            "with_infection": int((inf[sel].sum(1) > 0).sum()),
            "area_fraction": float(area[sel].mean()),
            "lung_fraction": float(in_lung[sel].mean()),
        }
    return out


def intensity_histograms(
    data: SegData, bins: int = 64, region: str = "image"
) -> dict[str, torch.Tensor]:
    """Normalised grey-level histograms per class (each sums to 1).

    Args:
        data: a loaded split.
        bins: number of bins over 0-255.
        region: ``"image"`` (all pixels), ``"lung"`` or ``"infection"`` (pixels inside that mask).
    """
    if region not in ("image", "lung", "infection"):
        raise ValueError(f"region: expected 'image', 'lung' or 'infection', got {region!r}")
    if region == "infection" and data.infection is None:
        raise ValueError("region='infection' needs the infection subset")
    out: dict[str, torch.Tensor] = {}
    for cls in CLASSES:
        idx = torch.tensor([i for i, c in enumerate(data.classes) if c == cls], dtype=torch.long)
        if not len(idx):
            continue
        px = data.images[idx.to(data.device)].flatten().float()
        if region != "image":
            mask = (data.lung if region == "lung" else data.infection)[
                idx.to(data.device)
            ].flatten()
            px = px[mask.bool()]
        hist = torch.histc(px.cpu(), bins=bins, min=0, max=255)
        out[cls] = hist / hist.sum().clamp_min(1)
    return out


def plot_intensity_histograms(data: SegData, bins: int = 64, region: str = "image", ax=None):
    """Draw ``intensity_histograms`` as lines, one per class. Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    centres = (torch.arange(bins) + 0.5) * (255 / bins)
    for cls, hist in intensity_histograms(data, bins, region).items():
        ax.plot(centres.numpy(), hist.numpy(), label=cls)
    ax.set(
        xlabel="grey level",
        ylabel="fraction of pixels",
        title=f"intensity ({region}, {data.split})",
    )
    ax.legend()
    return ax


def show_grid(
    data: SegData,
    n: int = 8,
    classes=None,
    cols: int = 4,
    seed: int = 0,
    lung: bool = True,
    infection: bool = True,
):
    """A grid of images with the lung outline (cyan) and infection overlay (red).

    Args:
        data: a loaded split.
        n: number of images.
        classes: only these classes (default all).
        cols: images per row.
        seed: which images are picked (random, reproducible).
        lung / infection: draw that mask.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if classes is not None:
        data = data.filter(classes)
    if len(data) == 0:
        raise ValueError("data: no images to show (check 'classes')")
    n = min(n, len(data))
    pick = (
        torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    )
    sub = data.select(pick).to("cpu")
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(sub.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        if lung and bool(sub.lung[i].any()):
            ax.contour(sub.lung[i, 0].numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
        if infection and sub.infection is not None:
            inf = sub.infection[i, 0].numpy().astype(float)
            overlay = np.zeros((*inf.shape, 4))
            overlay[..., 0], overlay[..., 3] = 1.0, 0.45 * inf
            ax.imshow(overlay)
        ax.set_title(f"{sub.classes[i]}\n{sub.names[i]}", fontsize=8)
    fig.tight_layout()
    return fig
