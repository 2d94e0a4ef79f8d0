"""ipywidgets viewer: browse images, ground truth and predictions across a split.

    viewer = lk.widgets.SegmentationViewer.from_data(test, probs=probs)
    viewer          # shows: class filter, threshold slider, image slider, three panels

Panels: the X-ray; the ground-truth infection (lung outline if given); the prediction at the
current threshold coloured by agreement in ``labkit.plots``' colours (green = true positive,
red = false positive, blue = missed; drawn by ``plots.error_overlay``). The line above says
the file, class, pixel counts and this image's Dice from ``labkit.metrics`` (``n/a`` for an
empty ground truth: labkit's empty-mask policy).

The figure is drawn with matplotlib's Agg canvas into an ``ipywidgets.Image`` (PNG), so it
works in Jupyter, Colab and VS Code alike and needs no interactive backend; executed
headless (nbval, ``labkit course run``) it only adds a widget output. ipywidgets and
matplotlib are imported when a viewer is made, not with labkit. Works with ipywidgets 7.7
(what Colab's front end renders) and 8.x: only widgets and calls both versions have.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch

from labkit.metrics import confusion_counts
from labkit.metrics import dice as dice_score
from labkit.plots import error_overlay

ALL = "all classes"


def _to_numpy(x: Any, name: str, n: int | None = None) -> np.ndarray | None:
    """(N, H, W) numpy from numpy/torch (N, 1, H, W) or (N, H, W); None passes through."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = (
            x.detach().float().cpu().numpy()
            if str(x.dtype) == "torch.bfloat16"
            else x.detach().cpu().numpy()
        )
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (N, 1, H, W) or (N, H, W), got {x.shape}")
    if n is not None and len(x) != n:
        raise ValueError(f"{name} has {len(x)} images but images has {n}")
    return x


class SegmentationViewer:
    """Browse a split: image slider, threshold slider, class filter.

    Args:
        images: ``(N, 1, H, W)`` or ``(N, H, W)`` images (uint8 0-255 or float).
        truth: ground-truth infection masks {0, 1}, same shape, or None.
        probs: predicted infection probabilities in [0, 1], same shape, or None.
        classes: the class of each image (for the filter), or None.
        names: a name per image (file names), or None.
        lung: lung masks {0, 1} (drawn as an outline), or None.
        threshold: initial probability threshold.

    Attributes:
        state: what the figure currently shows (index, name, class, pixel counts, Dice).
        widget: the ipywidgets box (displayed when the viewer is the cell's last value).
    """

    def __init__(
        self,
        images: Any,
        truth: Any = None,
        probs: Any = None,
        classes: list[str] | None = None,
        names: list[str] | None = None,
        lung: Any = None,
        threshold: float = 0.5,
    ) -> None:
        import ipywidgets as w

        self.images = _to_numpy(images, "images")
        n = len(self.images)
        if n == 0:
            raise ValueError("images is empty: nothing to show")
        self.truth = _to_numpy(truth, "truth", n)
        self.probs = _to_numpy(probs, "probs", n)
        self.lung = _to_numpy(lung, "lung", n)
        if self.probs is not None and (self.probs.min() < 0 or self.probs.max() > 1):
            raise ValueError("probs must be probabilities in [0, 1] (apply sigmoid to logits)")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.classes = list(classes) if classes is not None else ["-"] * n
        self.names = list(names) if names is not None else [f"image {i}" for i in range(n)]
        for arg, values in (("classes", self.classes), ("names", self.names)):
            if len(values) != n:
                raise ValueError(f"{arg} has {len(values)} entries but images has {n}")
        self.visible = list(range(n))
        self.state: dict[str, Any] = {}

        self.class_filter = w.Dropdown(
            options=[ALL, *sorted(set(self.classes))], value=ALL, description="class"
        )
        self.threshold = w.FloatSlider(
            value=threshold,
            min=0.0,
            max=1.0,
            step=0.05,
            description="threshold",
            disabled=self.probs is None,
        )
        self.index = w.IntSlider(value=0, min=0, max=n - 1, description="image")
        self.info = w.HTML()
        self.image = w.Image(format="png")
        self.widget = w.VBox(
            [w.HBox([self.class_filter, self.threshold]), self.index, self.info, self.image]
        )
        self._hold = False  # True while several controls change at once
        self.class_filter.observe(self._on_filter, names="value")
        self.threshold.observe(self._on_change, names="value")
        self.index.observe(self._on_change, names="value")
        self.render()

    @classmethod
    def from_data(cls, data: Any, probs: Any = None, **kwargs: Any) -> SegmentationViewer:
        """A viewer of a ``labkit.data.SegData`` split (images, infection, lung, classes)."""
        return cls(
            data.images,
            truth=getattr(data, "infection", None),
            probs=probs,
            classes=getattr(data, "classes", None),
            names=getattr(data, "names", None),
            lung=getattr(data, "lung", None),
            **kwargs,
        )

    def _on_change(self, _change: dict) -> None:
        if not self._hold:
            self.render()

    def _on_filter(self, change: dict) -> None:
        wanted = change["new"]
        self.visible = [i for i, c in enumerate(self.classes) if wanted in (ALL, c)]
        self._hold = True  # moving the slider back to 0 and changing its max: draw once
        try:
            self.index.value = 0
            self.index.max = max(len(self.visible) - 1, 0)
        finally:
            self._hold = False
        self.render()

    def render(self) -> None:
        """Redraw the figure for the current slider, threshold and filter values."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        i = self.visible[min(self.index.value, len(self.visible) - 1)]
        image = self.images[i]  # (H, W)
        truth = self.truth[i] > 0 if self.truth is not None else None  # (H, W) bool
        pred = self.probs[i] >= self.threshold.value if self.probs is not None else None
        panels = 1 + (truth is not None) + (pred is not None)
        fig = Figure(figsize=(3.2 * panels, 3.4), dpi=72)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, panels, squeeze=False)[0]
        # The same colours as lk.plots: the ground truth alone is all "found" (green); the
        # prediction is green where right, red where wrong, blue where infection was missed.
        # Without a ground truth the prediction is its own reference (all green).
        reference = truth if truth is not None else pred
        shown = [image]
        if truth is not None:
            shown.append(error_overlay(image, truth, truth))
        if pred is not None:
            shown.append(error_overlay(image, reference, pred))
        for ax, picture in zip(axes, shown):
            ax.imshow(picture, cmap="gray")
            ax.set_axis_off()
            if self.lung is not None:
                ax.contour(self.lung[i] > 0, levels=[0.5], colors="yellow", linewidths=0.6)
        axes[0].set_title("image")
        if truth is not None:
            axes[1].set_title("ground truth")
        if pred is not None:
            axes[-1].set_title(f"prediction >= {self.threshold.value:.2f}")
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.04)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        self.image.value = buffer.getvalue()

        dice = None  # labkit's empty-mask policy: no Dice for an empty ground truth
        if truth is not None and pred is not None:
            counts = confusion_counts(
                torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None]
            )
            score = float(dice_score(*counts)[0])  # NaN when the ground truth is empty
            dice = None if math.isnan(score) else score
        self.state = {
            "index": i,
            "name": self.names[i],
            "class": self.classes[i],
            "truth_pixels": None if truth is None else int(truth.sum()),
            "pred_pixels": None if pred is None else int(pred.sum()),
            "threshold": float(self.threshold.value),
            "dice": dice,
        }
        parts = [
            f"<b>{self.names[i]}</b> ({self.classes[i]})",
            f"{self.index.value + 1} of {len(self.visible)} shown",
        ]
        if truth is not None:
            parts.append(f"infection pixels: {self.state['truth_pixels']}")
        if pred is not None:
            parts.append(f"predicted: {self.state['pred_pixels']}")
        if truth is not None and pred is not None:
            parts.append("Dice n/a (empty ground truth)" if dice is None else f"Dice {dice:.3f}")
        self.info.value = " · ".join(parts)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def viewer(data: Any, probs: Any = None, **kwargs: Any) -> SegmentationViewer:
    """Shortcut for ``SegmentationViewer.from_data(data, probs, ...)``."""
    return SegmentationViewer.from_data(data, probs=probs, **kwargs)


def slice_viewer(
    volume: Any, truth: Any = None, probs: Any = None, lung: Any = None, name: str = "volume"
) -> SegmentationViewer:
    """Browse a CT volume slice by slice (lab 07): the same viewer, one "image" per slice.

    Args:
        volume: ``(X, Y, Z)`` CT (uint8 0-255 or float in [0, 1]); Z = slices.
        truth: ``(X, Y, Z)`` infection {0, 1}, or None.
        probs: ``(X, Y, Z)`` predicted probabilities (or a 0/1 prediction), or None.
        lung: ``(X, Y, Z)`` lung mask (outline), or None.
        name: shown with the slice number.

    Returns:
        A :class:`SegmentationViewer` whose slider moves through the slices and whose
        filter shows slices with or without infection; each slice's Dice is shown.

    Raises:
        ValueError: an input that is not 3-D, or of another shape than ``volume``.
    """

    def slices(x: Any, arg: str) -> Any:
        if x is None:
            return None
        x = torch.as_tensor(x)
        if x.ndim != 3 or (arg != "volume" and tuple(x.shape) != tuple(volume.shape)):
            raise ValueError(f"{arg} must be an (X, Y, Z) volume like volume, got {tuple(x.shape)}")
        return x.permute(2, 0, 1).float()  # (Z, X, Y): one image per slice

    volume = torch.as_tensor(volume)
    images = slices(volume, "volume")
    if volume.dtype == torch.uint8:
        images = images / 255.0
    masks = slices(truth, "truth")
    classes = None
    if masks is not None:
        classes = ["infection" if m.any() else "no infection" for m in masks]
    view = SegmentationViewer(
        images,
        truth=masks,
        probs=slices(probs, "probs"),
        classes=classes,
        names=[f"{name} slice {z}" for z in range(len(images))],
        lung=slices(lung, "lung"),
    )
    view.index.description = "slice"
    return view
