"""Decode + on-disk cache + SegData, on real PNG trees in tmp_path."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from _data_trees import make_tree, subset_dir, write_png
from PIL import Image

from labkit.data.cache import SegData, load_split, stratified_limit
from labkit.data.layout import index_dataset


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "data", subsets=("infection", "lung"), per_class=3, size=32)


def cache_files(tmp_path):
    return sorted((tmp_path / "cache" / "segdata").glob("*.pt"))


def test_load_matches_the_png_files(tree):
    data = load_split(tree, "Train", size=32, progress=False)
    assert isinstance(data, SegData) and len(data) == 9
    assert data.images.shape == (9, 1, 32, 32) and data.images.dtype == torch.uint8
    for i, record in enumerate(index_dataset(tree, splits="Train")):
        assert data.names[i] == record.name and data.classes[i] == record.cls
        assert np.array_equal(data.images[i, 0].numpy(), np.asarray(Image.open(record.image)))
        assert np.array_equal(
            data.lung[i, 0].numpy(), np.asarray(Image.open(record.lung_mask)) // 255
        )
        assert np.array_equal(
            data.infection[i, 0].numpy(), np.asarray(Image.open(record.infection_mask)) // 255
        )
    assert data.class_counts() == {"COVID-19": 3, "Non-COVID": 3, "Normal": 3}
    assert data.infection[[c != "COVID-19" for c in data.classes]].sum() == 0


def test_lung_subset_has_no_infection(tree):
    data = load_split(tree, "Val", subset="lung", size=32, progress=False)
    assert data.infection is None and data.subset == "lung" and len(data) == 9


def test_resize_keeps_masks_binary_and_aligned(tree):
    full = load_split(tree, "Train", size=32, progress=False)
    for size in (16, 48):
        small = load_split(tree, "Train", size=size, progress=False)
        assert small.images.shape == (9, 1, size, size)
        assert set(small.lung.unique().tolist()) == {0, 1}
        assert set(small.infection.unique().tolist()) <= {0, 1}
        # Lung area fraction survives resizing (nearest/threshold would not shift it much).
        frac = full.lung.float().mean(dim=(1, 2, 3))
        assert torch.allclose(small.lung.float().mean(dim=(1, 2, 3)), frac, atol=0.04)
        # The bright lung pixels of the resized image sit under the resized lung mask.
        inside = small.images[small.lung.bool()].float().mean()
        outside = small.images[~small.lung.bool()].float().mean()
        assert inside > outside + 30


def test_second_load_comes_from_the_cache(tree, tmp_path):
    first = load_split(tree, "Test", size=16, progress=False)
    (path,) = cache_files(tmp_path)
    stamp = path.stat().st_mtime_ns
    again = load_split(tree, "Test", size=16, progress=False)
    assert cache_files(tmp_path) == [path] and path.stat().st_mtime_ns == stamp
    assert torch.equal(first.images, again.images) and first.names == again.names
    # A cache file is also a file we can read ourselves: the uint8 tensors are in it.
    stored = torch.load(path, weights_only=True)
    assert torch.equal(stored["images"], first.images)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left beside it


def test_changed_file_invalidates_the_cache(tree, tmp_path):
    before = load_split(tree, "Train", size=32, progress=False)
    path = subset_dir(tree) / "Train" / "Normal" / "images" / "Normal (2).png"
    write_png(path, np.full((32, 32), 7, np.uint8))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse-mtime filesystems
    after = load_split(tree, "Train", size=32, progress=False)
    i = after.names.index("Normal (2).png")
    assert after.images[i].unique().tolist() == [7]
    assert not torch.equal(before.images[i], after.images[i])
    assert len(cache_files(tmp_path)) == 2


def test_added_file_invalidates_the_cache(tree):
    assert len(load_split(tree, "Val", size=16, progress=False)) == 9
    folder = subset_dir(tree) / "Val" / "COVID-19"
    for kind in ("images", "lung masks", "infection masks"):
        write_png(folder / kind / "covid_99 (copy).png", np.zeros((32, 32), np.uint8))
    data = load_split(tree, "Val", size=16, progress=False)
    assert len(data) == 10 and "covid_99 (copy).png" in data.names


def test_corrupt_cache_file_is_rebuilt(tree, tmp_path):
    load_split(tree, "Val", size=16, progress=False)
    (path,) = cache_files(tmp_path)
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        data = load_split(tree, "Val", size=16, progress=False)
    assert len(data) == 9 and torch.load(path, weights_only=True)["names"] == data.names


def test_classes_and_stratified_limit(tmp_path):
    tree = make_tree(tmp_path / "d", per_class=6, size=8, splits=("Train",))
    covid = load_split(tree, "Train", size=8, classes=["COVID-19"], progress=False)
    assert set(covid.classes) == {"COVID-19"} and len(covid) == 6
    few = load_split(tree, "Train", size=8, limit=7, progress=False)
    assert len(few) == 7 and set(few.classes) == {"COVID-19", "Non-COVID", "Normal"}
    assert few.names == load_split(tree, "Train", size=8, limit=7, progress=False).names
    with pytest.raises(ValueError, match="limit"):
        load_split(tree, "Train", size=8, limit=0, progress=False)


def test_stratified_limit_keeps_proportions(tmp_path):
    tree = make_tree(tmp_path / "d", per_class=1, size=8, splits=("Train",))
    covid, non_covid, normal = index_dataset(tree, splits="Train")  # one record per class
    even = [covid] * 10 + [non_covid] * 10 + [normal] * 10
    assert [r.cls for r in stratified_limit(even, 9)].count("Normal") == 3
    uneven = [covid] * 20 + [non_covid] * 5 + [normal] * 5
    assert [r.cls for r in stratified_limit(uneven, 9)].count("COVID-19") == 6  # 9 * 20/30
    assert len({r.cls for r in stratified_limit(uneven, 3)}) == 3  # every class kept
    assert stratified_limit(uneven, None) == uneven


def test_segdata_select_filter_to(tree):
    data = load_split(tree, "Train", size=16, progress=False)
    sub = data.select([8, 0])
    assert sub.names == [data.names[8], data.names[0]] and torch.equal(sub.lung[0], data.lung[8])
    covid = data.filter("COVID-19")
    assert len(covid) == 3 and set(covid.classes) == {"COVID-19"}
    assert torch.equal(covid.infection, data.infection[:3])
    assert data.to("cpu").images.device.type == "cpu"
    assert "COVID-19: 3" in repr(data)
    with pytest.raises(ValueError, match="out of range"):
        data.select([9])
    with pytest.raises(ValueError, match="unknown class"):
        data.filter("covid")


def test_bad_arguments(tree):
    with pytest.raises(ValueError, match="splits: unknown value 'train'.*did you mean 'Train'"):
        load_split(tree, "train", progress=False)
    with pytest.raises(ValueError, match="size"):
        load_split(tree, "Train", size=0, progress=False)
