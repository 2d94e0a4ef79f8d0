"""The data-tree helpers of tests/_data_trees.py write a real layout."""

from __future__ import annotations

import numpy as np
from _data_trees import make_tree, subset_dir
from PIL import Image


def test_make_tree_writes_real_layout(tmp_path):
    root = make_tree(tmp_path, subsets=("infection", "lung"), per_class=1, size=16)
    img = subset_dir(root) / "Train" / "Non-COVID" / "images" / "non_COVID (1).png"
    with Image.open(img) as im:
        assert (im.mode, im.size) == ("L", (16, 16))
    assert (subset_dir(root) / "Val" / "COVID-19" / "infection masks" / "covid_1.png").is_file()
    assert not (subset_dir(root, "lung") / "Val" / "COVID-19" / "infection masks").exists()
    with Image.open(
        subset_dir(root) / "Test" / "COVID-19" / "infection masks" / "covid_1.png"
    ) as im:
        assert set(np.unique(np.asarray(im))) == {0, 255}
