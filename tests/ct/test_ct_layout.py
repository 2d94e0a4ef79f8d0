"""The Kaggle CT layout: metadata.csv with Kaggle-relative paths, pairing, the subject split."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _ct_trees import small_ct_tree

from labkit.ct.layout import (
    CTRecord,
    find_ct_root,
    index_ct,
    kaggle_relative,
    scan_ct_tree,
    split_subjects,
    subject_of,
)


def test_subject_names_follow_the_published_file_names():
    assert subject_of("coronacases_org_001.nii") == "coronacases_001"
    # the published set's names (andrewmvd/covid19-ct-scans, from Zenodo's 20 cases)
    name = "radiopaedia_org_covid-19-pneumonia-10_85902_1-dcm.nii"
    assert subject_of(name) == "radiopaedia_10_85902_1"
    assert subject_of("radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii") == (
        "radiopaedia_4_85506_1"
    )
    # a hyphenated id (as some copies write it) reads the same
    assert subject_of("radiopaedia_org_covid-19-pneumonia-10-85902-1-dcm.nii") == (
        "radiopaedia_10_85902_1"
    )
    assert subject_of("my_scan.nii.gz") == "my_scan"


def test_kaggle_relative_paths_resolve_against_the_tree(tmp_path):
    got = kaggle_relative(tmp_path, "../input/covid19-ct-scans/ct_scans/coronacases_org_001.nii")
    assert got == tmp_path / "ct_scans" / "coronacases_org_001.nii"
    assert kaggle_relative(tmp_path, "lung_mask/x.nii") == tmp_path / "lung_mask" / "x.nii"


def test_index_pairs_every_ct_with_its_three_masks(tmp_path):
    records = index_ct(small_ct_tree(tmp_path))
    assert [r.subject for r in records] == [
        "coronacases_000", "coronacases_002", "radiopaedia_1_50001_0", "radiopaedia_3_50003_0",
    ]  # fmt: skip
    for r in records:
        assert all(p.is_file() for p in (r.ct, r.lung, r.infection, r.lung_and_infection))
        assert r.infection.parent.name == "infection_mask"


def test_without_metadata_the_folders_are_paired_by_name(tmp_path):
    with_meta = index_ct(small_ct_tree(tmp_path / "a"))
    without = index_ct(small_ct_tree(tmp_path / "b", metadata=False))
    assert [r.subject for r in with_meta] == [r.subject for r in without]


def test_a_metadata_row_pointing_to_a_missing_file_is_named(tmp_path):
    root = small_ct_tree(tmp_path)
    gone = root / "infection_mask" / "coronacases_002.nii"
    gone.unlink()
    _, problems = scan_ct_tree(root)
    assert [p.path for p in problems] == [gone]
    assert "metadata.csv line 4, infection_mask" in problems[0].message
    with pytest.raises(FileNotFoundError, match="coronacases_002.nii: missing file"):
        index_ct(root)


def test_a_metadata_file_without_the_ct_columns_is_refused(tmp_path):
    root = small_ct_tree(tmp_path)
    with open(root / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["ct_scan", "lung"], ["a", "b"]])
    with pytest.raises(ValueError, match="metadata.csv: missing column"):
        index_ct(root)


def test_the_tree_is_found_below_a_download_folder(tmp_path):
    root = small_ct_tree(tmp_path / "versions" / "1")
    assert find_ct_root(tmp_path) == root
    with pytest.raises(FileNotFoundError, match="no CT tree found"):
        find_ct_root(tmp_path / "versions" / "1" / "lung_mask")


def _records(n_each: int) -> list[CTRecord]:
    out = []
    for source in ("coronacases", "radiopaedia"):
        for i in range(n_each):
            p = Path(f"{source}_{i:03d}.nii")
            out.append(CTRecord(f"{source}_{i:03d}", p, p, p, p))
    return out


def test_the_split_is_by_subject_14_2_4_with_both_sources_in_every_split():
    split = split_subjects(_records(10))
    assert [len(split[k]) for k in ("train", "val", "test")] == [14, 2, 4]
    names = [r.subject for k in split for r in split[k]]
    assert len(set(names)) == 20
    for members in split.values():
        assert {r.source for r in members} == {"coronacases", "radiopaedia"}
    assert split_subjects(_records(10)) == split  # seeded, not clock-dependent
    assert split_subjects(_records(10), seed=1) != split


def test_a_split_needs_three_subjects():
    with pytest.raises(ValueError, match="at least 3 subjects, got 2"):
        split_subjects(_records(1))
