"""Finding and indexing COVID-QU-Ex trees: real PNG folders written into tmp_path."""

from __future__ import annotations

import pytest
from _data_trees import make_tree, subset_dir

from labkit.data.layout import (
    CLASSES,
    SPLITS,
    find_subset_dir,
    index_dataset,
    nearest_match,
    normalize_root,
    present_subsets,
)
from labkit.data.locate import describe_data_location, locate_data, resolve_data


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.delenv("LABKIT_DATA", raising=False)


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "covidqu", subsets=("infection", "lung"), per_class=3, size=16)


def test_index_pairs_every_image_with_its_masks(tree):
    records = index_dataset(tree, "infection")
    assert len(records) == len(SPLITS) * len(CLASSES) * 3
    for r in records:
        assert r.image.parent.name == "images"
        assert r.lung_mask.parent.name == "lung masks" and r.lung_mask.name == r.name
        assert r.infection_mask.parent.name == "infection masks" and r.infection_mask.name == r.name
        assert (r.image.parent.parent.name, r.image.parent.parent.parent.name) == (r.cls, r.split)
    names = {r.name for r in records}
    assert {"covid_1.png", "non_COVID (1).png", "Normal (3).png"} <= names  # spaces, parentheses


def test_index_lung_subset_has_no_infection_masks(tree):
    records = index_dataset(tree, "lung", splits="Val")
    assert records and all(r.infection_mask is None and r.split == "Val" for r in records)


def test_index_is_sorted_naturally_and_deterministic(tmp_path):
    root = make_tree(tmp_path / "d", per_class=11, size=8, splits=("Train",), classes=("COVID-19",))
    records = index_dataset(root, splits="Train", classes="COVID-19")
    assert [r.name for r in records][:3] == ["covid_1.png", "covid_2.png", "covid_3.png"]
    assert records[-1].name == "covid_11.png"
    assert records == index_dataset(root, splits="Train", classes="COVID-19")


def test_index_filters_split_and_class(tree):
    records = index_dataset(tree, splits=["Train", "Test"], classes=["COVID-19"])
    assert {(r.split, r.cls) for r in records} == {("Train", "COVID-19"), ("Test", "COVID-19")}


def test_unknown_class_suggests_the_right_name(tree):
    with pytest.raises(ValueError, match=r"did you mean 'COVID-19'"):
        index_dataset(tree, classes=["COVID19"])
    with pytest.raises(ValueError, match="unknown subset"):
        index_dataset(tree, subset="lungs")


def test_missing_class_folder_is_an_error_not_a_skip(tmp_path):
    root = make_tree(tmp_path / "d", per_class=1, size=8, classes=("COVID-19",))
    with pytest.raises(FileNotFoundError, match="Non-COVID"):
        index_dataset(root)
    assert len(index_dataset(root, classes="COVID-19")) == 3


@pytest.mark.parametrize("level", ["top", "outer", "inner"])
def test_root_accepted_at_any_level(tree, level):
    path = {"top": tree, "outer": tree / "Infection Segmentation Data", "inner": subset_dir(tree)}[
        level
    ]
    assert find_subset_dir(path, "infection") == subset_dir(tree)
    assert normalize_root(path) == tree
    assert len(index_dataset(path, splits="Train")) == 9


def test_bare_split_folder_is_accepted(tmp_path):
    tree = make_tree(tmp_path / "d", per_class=1, size=8)
    bare = subset_dir(tree).rename(tmp_path / "my data")
    assert find_subset_dir(bare) == bare
    assert list(present_subsets(bare)) == ["infection"]
    assert len(index_dataset(bare)) == 9


def test_wrong_subset_folder_is_named(tree):
    with pytest.raises(FileNotFoundError, match="needs 'Infection Segmentation Data'") as err:
        find_subset_dir(subset_dir(tree, "lung"), "infection")
    assert "Did you mean" in str(err.value)


def test_wrong_path_says_what_was_expected_and_suggests(tree):
    with pytest.raises(FileNotFoundError) as err:
        find_subset_dir(
            tree / "Infection Segmentation Data" / "Infection Segmentation Data" / "Train"
        )
    msg = str(err.value)
    assert "Expected the folder that contains 'Infection Segmentation Data'" in msg
    assert f"Did you mean '{subset_dir(tree)}'" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_data(tree.parent / "covidq")  # a typo
    assert nearest_match(tree.parent / "covidq") == tree
    assert nearest_match(tree.parent) == tree  # one level up: found below


def test_resolve_prefers_argument_then_env(tree, tmp_path, monkeypatch):
    other = make_tree(tmp_path / "other", per_class=1, size=8)
    monkeypatch.setenv("LABKIT_DATA", str(other))
    assert resolve_data() == other
    assert resolve_data(tree) == tree
    assert locate_data() == (other, "LABKIT_DATA")
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$LABKIT_DATA"):
        resolve_data()


def test_kagglehub_cache_is_found(tmp_path):
    version = (
        tmp_path / "kagglehub" / "datasets" / "anasmohammedtahir" / "covidqu" / "versions" / "5"
    )
    make_tree(version, per_class=1, size=8)
    assert locate_data() == (version, "kagglehub cache")
    assert resolve_data() == version
    assert "kagglehub cache" in describe_data_location(None)


def test_default_is_phantom_and_describe_never_raises(tmp_path, monkeypatch):
    assert locate_data() == ("phantom", "default")
    assert describe_data_location(None).startswith("phantom (default")
    assert "NOT a COVID-QU-Ex folder" in describe_data_location(str(tmp_path))
    # the phantom set's size is the caller's (a run profile's phantom_n), not read here
    monkeypatch.setenv("LABKIT_PROFILE", "no-such-profile")
    assert "phantom-n12-s0" in describe_data_location("phantom", phantom_n=12)
