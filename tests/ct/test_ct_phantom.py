"""The phantom CT set: the published layout, both conventions, learnable lungs and infection."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from labkit.ct.dataset import load_ct_volumes
from labkit.ct.layout import index_ct, split_subjects
from labkit.ct.patches import PatchLoader, positive_fraction
from labkit.ct.phantom import make_ct_phantom
from labkit.ct.settings import ct_settings
from labkit.ct.validate import check_ct
from labkit.ct.volume import load_nifti


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct") / "phantom"
    return make_ct_phantom(out, n=4, seed=3, sides=(32, 40), slices=(8, 12), progress=False)


def test_the_phantom_passes_the_check_with_both_conventions(phantom):
    report = check_ct(phantom, progress=False)
    assert report.ok and not report.problems
    assert [r.convention for r in report.rows] == ["hu", "windowed", "hu", "windowed"]
    assert all(r.infection_voxels > 0 for r in report.rows)
    assert {r.shape[0] for r in report.rows} <= {32, 40}
    assert all(8 <= r.shape[2] <= 12 for r in report.rows)


def test_metadata_uses_kaggle_relative_paths(phantom):
    with open(phantom / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["ct_scan"] == "../input/covid19-ct-scans/ct_scans/coronacases_org_001.nii"
    assert rows[1]["infection_mask"].endswith("infection_mask/radiopaedia_1_90001_0.nii")
    # the published form of a Radiopaedia CT name: underscores inside the id
    assert rows[1]["ct_scan"].endswith(
        "ct_scans/radiopaedia_org_covid-19-pneumonia-1_90001_0-dcm.nii"
    )


def test_masks_agree_and_infection_lies_in_the_lungs(phantom):
    for record in index_ct(phantom):
        lung, _ = load_nifti(record.lung)
        infection, _ = load_nifti(record.infection)
        both, _ = load_nifti(record.lung_and_infection)
        assert set(np.unique(lung)) == {0, 1, 2}
        assert infection.any() and (lung[infection > 0] > 0).all()
        assert np.array_equal(both == 3, infection > 0)


def test_the_same_seed_gives_the_same_volumes_and_a_foreign_folder_is_kept(tmp_path, phantom):
    again = make_ct_phantom(
        tmp_path / "again", n=4, seed=3, sides=(32, 40), slices=(8, 12), progress=False
    )
    for a, b in zip(index_ct(phantom), index_ct(again)):
        assert np.array_equal(load_nifti(a.ct)[0], load_nifti(b.ct)[0])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty and not a phantom"):
        make_ct_phantom(tmp_path / "mine", n=4, progress=False)
    with pytest.raises(ValueError, match="n must be an int >= 3"):
        make_ct_phantom(tmp_path / "few", n=2, progress=False)


def test_the_default_phantom_shows_the_imbalance_lab_07_teaches(tmp_path):
    # Lab 07 teaches that uniform patches are mostly empty, so a stated share of positive
    # patches is needed. The default phantom (as lab 07 loads it) at the smoke profile's
    # patch must show it: few uniform patches hold infection, and a share of 0.5 adds many.
    patch = ct_settings("smoke").patch
    root = make_ct_phantom(tmp_path / "ct", progress=False)
    train = load_ct_volumes(split_subjects(index_ct(root))["train"], patch, progress=False)
    infected = sum(int(v.infection.sum()) for v in train) / sum(v.infection.numel() for v in train)
    assert infected < 0.005  # under 0.5 % of the voxels, as on real CT
    uniform = positive_fraction(PatchLoader(train, patch, 5, 40, positive_share=0.0))
    stated = positive_fraction(PatchLoader(train, patch, 5, 40, positive_share=0.5))
    assert uniform < 0.35, uniform
    assert stated > uniform + 0.25, (uniform, stated)
