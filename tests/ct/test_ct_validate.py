"""`labkit data check` on a CT tree: one row per volume, every defect named with its file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _ct_trees import small_ct_tree, write_nifti

from labkit.ct.validate import check_ct


def test_a_clean_tree_gives_one_row_per_volume_with_its_convention(tmp_path):
    report = check_ct(small_ct_tree(tmp_path), progress=False)
    assert report.ok and not report.problems
    assert [r.convention for r in report.rows] == ["hu", "windowed", "hu", "windowed"]
    assert {r.infection_voxels for r in report.rows} == {18}  # 3 x 3 x 2 voxels each
    assert report.rows[0].shape == (12, 10, 6)
    assert report.rows[0].spacing == pytest.approx((0.7, 0.7, 5.0))
    assert "coronacases_000" in report.table() and "18 voxels" in report.table()


def test_each_defect_is_an_error_naming_its_file(tmp_path):
    root = small_ct_tree(tmp_path)
    missing = root / "lung_mask" / "coronacases_000.nii"
    missing.unlink()
    wrong_shape = write_nifti(
        root / "infection_mask" / "coronacases_002.nii", np.zeros((4, 4, 4), np.uint8)
    )
    truncated = root / "ct_scans" / "radiopaedia_org_covid-19-pneumonia-1_50001_0-dcm.nii"
    truncated.write_bytes(truncated.read_bytes()[:400])
    bad_labels = root / "lung_and_infection_mask" / "radiopaedia_3_50003_0.nii"
    write_nifti(bad_labels, np.full((12, 10, 6), 9, np.uint8))
    report = check_ct(root, progress=False)
    assert not report.ok
    by_file = {p.path: p.message for p in report.errors}
    assert set(by_file) == {missing, wrong_shape, truncated, bad_labels}
    assert "missing file" in by_file[missing]
    assert "differs from the CT's (12, 10, 6)" in by_file[wrong_shape]
    assert "not a readable NIfTI" in by_file[truncated]
    assert "found 9" in by_file[bad_labels]
    assert len(report.rows) == 3  # the truncated CT has no row; the others do


def test_a_missing_ct_is_reported_once(tmp_path):
    root = small_ct_tree(tmp_path)
    gone = root / "ct_scans" / "coronacases_org_000.nii"
    gone.unlink()
    report = check_ct(root, progress=False)
    assert [(p.path, p.message) for p in report.errors] == [
        (gone, "missing file (metadata.csv line 2, ct_scan)")
    ]
    assert len(report.rows) == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labkit", "data", *args], capture_output=True, text=True, timeout=120
    )


def test_the_cli_detects_a_ct_tree_and_exits_by_its_verdict(tmp_path):
    root = small_ct_tree(tmp_path / "download" / "1")
    ok = _cli("check", str(tmp_path / "download"), "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert "CT tree: 4 readable volume(s)" in ok.stdout and "windowed" in ok.stdout
    (root / "infection_mask" / "coronacases_000.nii").unlink()
    bad = _cli("check", str(root), "--quiet")
    assert bad.returncode == 1
    assert "infection_mask/coronacases_000.nii: missing file" in bad.stdout
    assert "Traceback" not in bad.stderr
