"""Reading one NIfTI volume (real files written with nibabel) and the two intensity conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ct_trees import write_nifti

from labkit.ct.volume import check_mask_labels, detect_convention, load_nifti, window_ct


def test_load_nifti_gives_the_voxels_as_stored_and_the_spacing(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 1000
    path = write_nifti(tmp_path / "a.nii", data, spacing=(0.5, 0.75, 2.5))
    got, spacing = load_nifti(path)
    assert np.array_equal(got, data)
    assert spacing == (0.5, 0.75, 2.5)


def test_a_file_that_is_not_nifti_is_named_in_the_error(tmp_path):
    path = tmp_path / "notes.nii"
    path.write_text("not a volume")
    with pytest.raises(ValueError, match="notes.nii: not a readable NIfTI"):
        load_nifti(path)


def test_a_truncated_nifti_is_named_in_the_error(tmp_path):
    path = write_nifti(tmp_path / "cut.nii", np.zeros((16, 16, 8), np.int16))
    path.write_bytes(path.read_bytes()[:1000])  # header kept, most voxels gone
    with pytest.raises(ValueError, match="cut.nii: not a readable NIfTI"):
        load_nifti(path)


def test_a_4d_volume_is_refused_unless_its_last_axis_is_one(tmp_path):
    four = write_nifti(tmp_path / "four.nii", np.zeros((4, 4, 3, 2), np.int16))
    with pytest.raises(ValueError, match=r"four.nii: expected a 3-D volume .* 4-D shape"):
        load_nifti(four)
    one = write_nifti(tmp_path / "one.nii", np.zeros((4, 4, 3, 1), np.int16))
    assert load_nifti(one)[0].shape == (4, 4, 3)


def test_mask_values_outside_the_documented_labels_name_the_file():
    mask = np.array([[[0, 1, 2, 7]]])
    with pytest.raises(
        ValueError, match=r"lung.nii: lung_mask values must be in \(0, 1, 2\), found 7"
    ):
        check_mask_labels(mask, "lung_mask", "lung.nii")
    with pytest.raises(ValueError, match="inf.nii: infection_mask .* found 2"):
        check_mask_labels(np.array([0, 1, 2]), "infection_mask", "inf.nii")
    assert check_mask_labels(np.array([0, 3, 2]), "lung_and_infection_mask", "x").tolist() == [
        0,
        3,
        2,
    ]


def test_window_ct_maps_both_conventions_to_one_scale():
    hu = torch.tensor([-3024.0, -1250.0, -500.0, 250.0, 1000.0])
    assert torch.allclose(window_ct(hu, "hu"), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    windowed = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(window_ct(windowed, "windowed"), torch.tensor([0.0, 0.2, 1.0]))
    # the same lung (-850 HU) stored both ways lands on the same value, within one 0-255 step
    lung_hu = window_ct(torch.tensor([-850.0]), "hu")
    lung_windowed = window_ct(torch.tensor([round(400 / 1500 * 255)]), "windowed")
    assert abs(float(lung_hu - lung_windowed)) < 1 / 255
    assert window_ct(hu.short(), "hu").dtype == torch.float32
    with pytest.raises(ValueError, match="convention must be one of"):
        window_ct(hu, "raw")


def test_detect_convention_from_the_values():
    assert detect_convention(np.array([-1000, 40], np.int16)) == "hu"
    assert detect_convention(np.array([0, 255], np.uint8)) == "windowed"
    assert detect_convention(np.array([0.0, 300.0])) == "hu"
