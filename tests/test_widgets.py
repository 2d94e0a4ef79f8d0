"""The ipywidgets viewer: real widgets, no kernel; moving a control redraws the figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.widgets import ALL, SegmentationViewer


def _split(n: int = 6, size: int = 16):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 1, size, size)).astype(np.uint8)
    truth = np.zeros((n, 1, size, size), dtype=np.uint8)
    truth[0::2, :, 4:10, 4:10] = 1  # COVID-19 images have infection; the others none
    probs = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.4, 0, 1).astype(np.float32)
    classes = ["COVID-19", "Normal"] * (n // 2)
    names = [f"img_{i}.png" for i in range(n)]
    return images, truth, probs, classes, names


def test_viewer_constructs_and_controls_redraw():
    images, truth, probs, classes, names = _split()
    v = SegmentationViewer(
        torch.from_numpy(images), truth, probs, classes=classes, names=names, lung=truth
    )
    assert v.index.max == 5 and not v.threshold.disabled
    first = bytes(v.image.value)
    assert first.startswith(b"\x89PNG")
    assert v.state["name"] == "img_0.png" and v.state["truth_pixels"] == 36

    v.index.value = 1
    assert v.state["name"] == "img_1.png" and v.state["class"] == "Normal"
    assert v.state["dice"] is None and "Dice n/a (empty ground truth)" in v.info.value
    assert bytes(v.image.value) != first

    v.index.value = 0
    low = v.state["pred_pixels"]
    before = bytes(v.image.value)
    v.threshold.value = 0.95
    assert v.state["pred_pixels"] < low
    assert bytes(v.image.value) != before
    expected = 2 * ((truth[0, 0] > 0) & (probs[0, 0] >= 0.95)).sum()
    expected /= (truth[0, 0] > 0).sum() + (probs[0, 0] >= 0.95).sum()
    assert v.state["dice"] == pytest.approx(expected)


def test_class_filter_limits_the_slider():
    images, truth, probs, classes, names = _split()
    v = SegmentationViewer(images, truth, probs, classes=classes, names=names)
    v.index.value = 5
    v.class_filter.value = "Normal"
    assert v.visible == [1, 3, 5] and v.index.max == 2
    shown = []
    for i in range(3):
        v.index.value = i
        shown.append(v.state["class"])
    assert shown == ["Normal"] * 3
    v.class_filter.value = ALL
    assert v.index.max == 5


def test_viewer_without_predictions_and_bad_input():
    images, truth, _, _, _ = _split()
    v = SegmentationViewer(images[:, 0], truth)
    assert v.threshold.disabled and v.state["pred_pixels"] is None
    with pytest.raises(ValueError, match="probs has 2 images but images has 6"):
        SegmentationViewer(images, truth, probs=np.zeros((2, 1, 16, 16)))
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        SegmentationViewer(images, truth, probs=np.full(images.shape, 3.0))
    with pytest.raises(ValueError, match="images must have shape"):
        SegmentationViewer(np.zeros((16, 16)))


def test_notebook_progress_bar_is_a_real_widget_that_ends_showing_the_count():
    # tqdm.auto picks tqdm.notebook in Jupyter and Colab: its bar is an ipywidgets
    # FloatProgress, which must work with Colab's ipywidgets 7.7 and with 8.x.
    import ipywidgets
    from tqdm.notebook import tqdm

    bar = tqdm(range(3), desc="epochs", disable=False)
    for _ in bar:
        pass
    progress = bar.container.children[1]
    assert isinstance(progress, ipywidgets.FloatProgress)
    assert (progress.value, progress.max, progress.bar_style) == (3, 3, "success")
    assert "3/3" in bar.container.children[2].value
