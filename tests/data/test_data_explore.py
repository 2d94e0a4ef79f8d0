"""Lab 01 exploration helpers on a real decoded split."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from _data_trees import make_tree

from labkit.data.cache import load_split
from labkit.data.explore import (
    count_images,
    counts_table,
    infection_area,
    intensity_histograms,
    plot_intensity_histograms,
    show_grid,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("tree"), per_class=3, size=16)


@pytest.fixture(scope="module")
def data(root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE", str(root / "cache"))
        return load_split(root, "Train", size=16, progress=False)


def test_counts_table(root):
    counts = count_images(root)
    assert counts["Val"] == {"COVID-19": 3, "Non-COVID": 3, "Normal": 3}
    table = counts_table(counts, title="infection")
    lines = table.splitlines()
    assert lines[0] == "infection" and lines[1].split() == [
        "split",
        "COVID-19",
        "Non-COVID",
        "Normal",
        "total",
    ]
    assert lines[2].split() == ["Train", "3", "3", "3", "9"]
    assert lines[-1].split() == ["total", "9", "9", "9", "27"]


def test_infection_area_per_class(data):
    area = infection_area(data)
    covid = data.filter("COVID-19")
    expected = covid.infection.float().mean().item()
    assert area["COVID-19"]["area_fraction"] == pytest.approx(expected)
    assert area["COVID-19"]["with_infection"] == 3 and area["COVID-19"]["images"] == 3
    assert 0 < area["COVID-19"]["lung_fraction"] <= 1
    assert area["Normal"]["area_fraction"] == 0 and area["Non-COVID"]["with_infection"] == 0


def test_intensity_histograms(data):
    hists = intensity_histograms(data, bins=16)
    assert set(hists) == {"COVID-19", "Non-COVID", "Normal"}
    for h in hists.values():
        assert h.shape == (16,) and h.sum().item() == pytest.approx(1.0)
    lung = intensity_histograms(data, bins=16, region="lung")["Normal"]
    # lung pixels are brighter than the background in the helper's images
    centres = torch.arange(16) + 0.5
    assert (lung * centres).sum() > (hists["Normal"] * centres).sum()
    with pytest.raises(ValueError, match="region"):
        intensity_histograms(data, region="heart")


def test_plots_return_figures(data):
    import matplotlib

    matplotlib.use("Agg")
    fig = show_grid(data, n=5, cols=3)
    assert len([ax for ax in fig.axes if ax.images]) == 5
    assert fig.axes[0].get_title().split("\n")[1] in data.names
    ax = plot_intensity_histograms(data, bins=8)
    assert len(ax.lines) == 3
    with pytest.raises(ValueError, match="no images"):
        show_grid(data.select([]))


def test_import_is_light():
    code = (
        "import sys, labkit.data, labkit.data.layout; "
        "print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
