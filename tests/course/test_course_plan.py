"""`labkit course plan`: one row per lab for every device, FLOPs that scale as counted, and
the rule that keeps a split off a GPU it does not fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labkit import runs
from labkit.cli import main as cli_main
from labkit.course.build import find_labs
from labkit.course.plan import CT_LAB, DEVICES, lab_estimate, lab_trainings, plan_lab
from labkit.data.cache import fits_on_gpu
from labkit.runs import get_profile

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"
LABS = [p.stem[:2] for p in find_labs(SOLUTIONS)]
XRAY_LABS = [lab for lab in runs.LABS if lab != CT_LAB]  # lab 07 sizes itself: labkit.ct.settings


def test_every_lab_source_has_a_plan_entry():
    assert LABS and set(LABS) <= set(runs.LABS)


@pytest.mark.parametrize("gpu", DEVICES)
def test_course_plan_prints_a_row_per_lab_on_every_device(gpu, capsys):
    assert cli_main(["course", "plan", "--profile", "practical", "--gpu", gpu,
                     "--source", str(SOLUTIONS)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "ESTIMATE" in out.splitlines()[0]
    for lab in LABS:
        row = next(line for line in out.splitlines() if line.startswith(f"{lab}  "))
        timed = re.search(r"(about \d+ min|under 1 min)", row) and f"on {gpu}" in row
        too_long = gpu == "cpu" and "hours to days on a CPU" in row  # advice, not a time
        assert row.endswith("no training") or timed or too_long, row
        if not row.endswith("no training"):
            assert re.search(r"\d+ (img|patches) x \d+ ep", row) and "FLOP" in row


def test_unknown_device_is_a_one_line_error(capsys):
    assert cli_main(["course", "plan", "--gpu", "tpu", "--source", str(SOLUTIONS)]) == 2
    assert "--gpu: unknown device 'tpu'" in capsys.readouterr().err


def test_plan_counts_what_the_profile_asks_for():
    full, practical = get_profile("full"), get_profile("practical")
    # lab 03 trains two models on the 1,864 COVID-19 Train images for the report's 100 epochs
    f03 = plan_lab(full, "03", "t4")
    (t,) = f03["trainings"]
    assert (t["models"], t["train_images"], t["epochs"], t["size"]) == (2, 1864, 100, 256)
    # practical: 25 epochs at width 32: 4x fewer FLOPs per image, 4x fewer epochs
    p03 = plan_lab(practical, "03", "t4")
    assert p03["gflop"] == pytest.approx(f03["gflop"] / 16, rel=0.05)
    # the same work on a faster device takes fewer minutes; the CPU far more
    assert (
        plan_lab(full, "03", "h100")["minutes"]
        < f03["minutes"]
        < plan_lab(full, "03", "cpu")["minutes"]
    )
    assert plan_lab(full, "01", "t4")["trainings"] == []


def test_practical_labs_fit_a_t4_in_about_20_minutes():
    for lab in XRAY_LABS:
        plan = plan_lab(get_profile("practical"), lab, "t4")
        assert plan["minutes"] <= 20, (lab, plan["minutes"])  # the central estimate


def test_lab05_lung_split_stays_off_a_t4_in_full():
    # 21,715 + 5,417 lung images at 448 px with their masks: ~10.9 GB, not beside a model
    plan = plan_lab(get_profile("full"), "05", "t4")
    assert plan["cache_gb"] > 10 and plan["cache_fits"] is False
    assert plan_lab(get_profile("full"), "05", "h100")["cache_fits"] is True
    assert plan_lab(get_profile("practical"), "05", "t4")["cache_fits"] is True


def test_fits_on_gpu_keeps_headroom():
    gb = 1e9
    assert fits_on_gpu(0.92 * gb, 15 * gb)  # the infection subset at 256 px on a T4
    assert not fits_on_gpu(13.6 * gb, 15 * gb)  # lab 05's lung subset at 448 px
    assert not fits_on_gpu(8 * gb, 15 * gb)  # fits in the memory, but leaves no headroom


def test_a_notebook_gets_its_own_estimate_on_this_cpu():
    text = lab_estimate(get_profile("smoke").for_lab("02"), "cpu")
    assert text.startswith("training in this lab: ") and "on this CPU (an estimate" in text
    assert re.search(r"(about \d+ min|under 1 min) on this CPU", text)
    assert lab_estimate(get_profile("smoke").for_lab("01"), "cpu") == "this lab trains no model"


def test_every_training_lab_prints_its_estimate_before_it_trains():
    import torch

    from labkit.course.build import find_labs
    from labkit.course.setup import LabSetup

    for lab in [*(lab for lab in XRAY_LABS if lab_trainings(lab)), CT_LAB]:
        (source,) = find_labs(Path(__file__).resolve().parents[2] / "solutions", [lab])
        text = source.read_text(encoding="utf-8")
        assert "print(S.estimate())" in text, source
        assert text.index("print(S.estimate())") < text.index(
            ".fit(" if ".fit(" in text else "train_ct("
        )
        profile = get_profile("smoke").for_lab(lab)
        S = LabSetup(lab, profile, torch.device("cpu"), None, "phantom", True, False, 0)
        assert S.estimate() == lab_estimate(profile, "cpu")
        assert "on this CPU (an estimate" in S.estimate()


def test_the_counted_table_matches_a_recount_and_scales_with_pixels():
    from labkit.course.plan import COUNTED_256, count_costs, model_costs

    key = ("unet", 1, 16, "{}")
    train, fwd, params, saved = COUNTED_256[key]
    again = count_costs("unet", 1, 256, 16, "{}")
    assert again["train_gflop"] == pytest.approx(train, rel=1e-3)
    assert again["forward_gflop"] == pytest.approx(fwd, rel=1e-3)
    assert again["params"] == params and again["saved_bytes"] == pytest.approx(saved, rel=1e-3)
    # at 64 px the table's figure scaled by the pixels is what the counter finds
    small = count_costs("unet", 1, 64, 16, "{}")
    assert model_costs("unet", 1, 64, 16, "{}")["train_gflop"] == pytest.approx(
        small["train_gflop"], rel=0.02
    )


def test_every_2d_plan_uses_the_counted_table():
    # a notebook's estimate must not build and count models (minutes on a busy CPU)
    for name in ("smoke", "practical", "full"):
        for lab in XRAY_LABS:
            rows = plan_lab(get_profile(name), lab, "t4")["trainings"]
            assert all(r["counted"] == "table" for r in rows), (name, lab)


def test_the_ct_lab_is_planned_from_its_own_settings():
    from labkit.ct.settings import ct_settings

    (row,) = plan_lab(get_profile("full"), CT_LAB, "t4")["trainings"]
    c = ct_settings("full")
    assert (row["models"], row["epochs"], row["batch"]) == (len(c.ablation), 200, 5)
    assert row["train_images"] == 14 * c.patches_per_volume and row["unit"] == "patches"


def test_a_cpu_plan_too_long_for_a_cpu_gives_advice_not_thousands_of_minutes():
    from labkit.course.plan import describe_plan

    text = describe_plan(plan_lab(get_profile("practical").for_lab("02"), "02", "cpu"))
    assert "hours to days on a CPU" in text and "--profile smoke" in text, text
    assert " min (" not in text  # no "11323 min (412-7411 min)"
    smoke = describe_plan(plan_lab(get_profile("smoke").for_lab("02"), "02", "cpu"))
    assert " min (" in smoke and "on cpu" in smoke  # a CPU can do smoke: a time in minutes
