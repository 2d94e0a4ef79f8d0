"""Lab 07's settings: one per run profile, patches the 3-D model can take, departures named."""

from __future__ import annotations

import dataclasses

import pytest

from labkit.ct.settings import CT_SETTINGS, REPORT, ct_settings
from labkit.runs import LABS, PROFILES


def test_every_profile_has_settings_and_full_is_the_reports():
    assert set(CT_SETTINGS) == set(PROFILES)
    assert ct_settings("full") == REPORT and not REPORT.departures
    assert (REPORT.patch, REPORT.batch_size, REPORT.epochs, REPORT.lr) == (
        (128, 128, 8),
        5,
        200,
        1e-4,
    )
    with pytest.raises(ValueError, match="profile must be one of"):
        ct_settings("fast")


@pytest.mark.parametrize("name", sorted(CT_SETTINGS))
def test_patches_fit_the_model_and_departures_name_real_changes(name):
    s = ct_settings(name)
    assert all(side % 2**s.depth == 0 for side in s.patch)  # the 3-D model's stride
    assert set(s.ablation) <= set(LABS["07"].ablation) and "fv_paspp_ds" in s.ablation
    fields = {f.name for f in dataclasses.fields(s)} - {"departures"}
    for changed in s.departures:
        assert changed in fields and getattr(s, changed) != getattr(REPORT, changed), changed
    changed = {f for f in fields if getattr(s, f) != getattr(REPORT, f)}
    assert changed == set(s.departures), "every change from the report needs its reason"


def test_the_full_profile_takes_report_004s_numbers_from_the_report_settings():
    from labkit.runs import report_settings

    r, full = report_settings("004.ct"), ct_settings("full")
    assert (full.batch_size, full.epochs, full.lr, full.base_width) == (
        r.batch_size, r.epochs, r.lr, r.base_width,
    )  # fmt: skip
    assert full.patch[0] == r.size  # the in-plane side of report 004's 128x128x8 patches
    assert "base_width" in r.assumed  # not in the syllabus for the report: the assumption says why
