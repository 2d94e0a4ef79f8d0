"""Run profiles and recipes: the reports' settings from one table, every departure with its
reason, the lab-bound practical sizes, and the safety-limit warning on a real training run."""

from __future__ import annotations

import pytest
import torch

from labkit.data import BatchLoader, load_split
from labkit.models import build_model
from labkit.runs import LABS, PROFILES, REPORT_SETTINGS, SAFETY_STOP, get_profile, report_settings
from labkit.train import fit


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_by_name_and_env(name, monkeypatch):
    assert get_profile(name).name == name
    assert get_profile(name.upper()).name == name
    monkeypatch.setenv("LABKIT_PROFILE", name)
    assert get_profile().name == name


def test_default_profile_is_smoke(monkeypatch):
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    assert get_profile().name == "smoke"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match=r"'fast'.*valid profiles: full, practical, smoke"):
        get_profile("fast")
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    with pytest.raises(ValueError, match="LABKIT_PROFILE"):
        get_profile()


@pytest.mark.parametrize("key", sorted(REPORT_SETTINGS))
def test_full_recipe_is_the_reports_table(key):
    s, r = report_settings(key), get_profile("full").recipe(key)
    got = (r.epochs, r.lr, r.loss, r.base_width, r.batch_size, r.size, r.train_images)
    assert got == (s.epochs, s.lr, s.loss, s.base_width, s.batch_size, s.size, None)
    assert r.departures == {} and r.scheduler is None and r.time_budget_min is None
    assert "report's" in str(r) and r.report == key


def test_unknown_report_key_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"'001\.unett'.*001\.unet"):
        get_profile("full").recipe("001.unett")
    with pytest.raises(ValueError, match="give report= or epochs, lr, loss"):
        get_profile("full").recipe()


def test_smoke_recipe_lists_each_departure_and_no_time_budget():
    smoke = get_profile("smoke").for_lab("02")
    r = smoke.recipe("001.unet")
    cli = smoke.cli_train
    assert (r.epochs, r.lr, r.loss, r.base_width, r.size) == (
        cli.epochs,
        cli.min_lr,
        "bce_dice",
        16,
        64,
    )
    assert r.train_images is None and r.scheduler == cli.scheduler
    assert list(r.departures) == [
        "epochs", "train_images", "base_width", "lr", "scheduler", "loss", "time_budget_min"
    ]  # fmt: skip
    assert "not a time budget" in r.departures["time_budget_min"]  # a safety net, said so
    for reason in r.departures.values():
        assert reason in str(r)  # printed for the student, each with its reason


def test_a_labs_own_smoke_changes_come_from_the_table():
    # lab 03 compares plain losses: no Dice term; lab 06 trains six small models
    r03 = get_profile("smoke").for_lab("03").recipe("000.resunet")
    assert (r03.loss, r03.epochs, r03.batch_size) == ("bce", 15, 8) and "loss" not in r03.departures
    # report 000 states no lr: the departure names whose 1e-4 it replaces, not "the report's"
    assert (
        r03.lr == 1e-3
        and "lr 0.001 instead of 0.0001 (not in the syllabus for report 000" in str(r03)
    )
    assert "the report's" not in r03.departures["lr"]
    # the epochs line tells the report's epochs from the profile's cap
    assert "15 epochs (instead of the report's 100), not the smoke profile's cap of 2" in str(r03)
    r06 = get_profile("smoke").for_lab("06").recipe("004.fvpaspp")
    table = {k: v for k, (v, _) in LABS["06"].smoke.items()}
    assert (r06.epochs, r06.base_width, r06.batch_size) == (table["epochs"], 8, 4)
    assert "batch 4 instead of 16" in r06.departures["batch_size"]
    # unbound (labkit train): the profile's own smoke settings
    assert get_profile("smoke").recipe("000.resunet").loss == "bce_dice"
    with pytest.raises(ValueError, match="no_such_setting.*batch_size"):
        get_profile("smoke").recipe("001.unet", smoke={"no_such_setting": 1})


def test_labs_04_05_smoke_recipes_train_enough_steps_and_fix_efficientnets_batch_norm():
    """Random-start smp encoders (no ImageNet weights offline) must beat 'every lung pixel is
    infected' on the phantom data (benchmarks/RESULTS.md, session 5)."""
    r04 = get_profile("smoke").for_lab("04").recipe("002.resnet34")
    got = (r04.epochs, r04.batch_size, r04.lr, r04.train_images, r04.scheduler, r04.size)
    assert got == (10, 8, 1e-3, None, "cosine", 64) and "lr" not in r04.departures
    r05 = get_profile("smoke").for_lab("05").recipe("003.b0")
    got = (r05.epochs, r05.batch_size, r05.lr, r05.train_images, r05.scheduler, r05.loss)
    epochs05 = LABS["05"].smoke["epochs"][0]  # chosen on Val (RESULTS.md 3.1)
    assert epochs05 >= 12 and got == (epochs05, 8, 2e-3, None, "cosine", "combined")
    for r in (r04, r05):
        assert r.bn_momentum == 0.1 and "EfficientNet's 0.01" in r.departures["bn_momentum"]
        assert r.departures["bn_momentum"] in str(r)  # printed, with its reason
    # the from-scratch U-Nets have PyTorch's momentum already; practical and full keep the
    # encoders' own
    assert get_profile("smoke").for_lab("02").recipe("001.unet").bn_momentum is None
    for name in ("practical", "full"):
        for lab, key in (("04", "002.resnet34"), ("05", "003.b0")):
            r = get_profile(name).for_lab(lab).recipe(key)
            assert r.bn_momentum is None and "bn_momentum" not in r.departures


def test_practical_departs_per_lab_with_reasons():
    practical = get_profile("practical")
    assert practical.recipe("001.unet").departures == {}  # unbound: the report's settings
    r = practical.for_lab("06").recipe("004.fvpaspp")
    assert (r.size, r.epochs, r.base_width, r.lr, r.loss) == (128, 12, 32, 1e-4, "bce_dice")
    assert set(r.departures) == {"size", "epochs", "base_width"}
    assert "report 004's own patch side" in str(r)
    # lab 05's image side, epochs and lung images come from the bound lab too
    p05 = practical.for_lab("05")
    assert (p05.size(448), p05.epochs(15), p05.epochs(50)) == (256, 6, 6)
    assert (p05.images(subset="lung"), p05.images()) == (3000, None)
    text = p05.departures_text()
    assert text.count("\n  - ") == 3 and "256 px instead of 448" in text
    assert (
        get_profile("full")
        .for_lab("05")
        .departures_text()
        .startswith("full profile: the report's settings")
    )
    # a pretrained encoder has no width to change
    assert practical.for_lab("04").recipe("002.resnet34").base_width is None


def test_the_safety_limit_warns_with_the_epochs_trained(tmp_path, capsys):
    """A real (tiny) training that the safety limit stops after its first epoch."""
    from labkit.data.phantom import make_phantom

    root = make_phantom(tmp_path / "data", n=24, size=32, progress=False)
    train = load_split(root, "Train", size=32, cache=False, progress=False)
    recipe = get_profile("smoke").recipe("001.unet")
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, base_width=4, depth=2)
    history = fit(model, BatchLoader(train, 8), BatchLoader(train, 8, shuffle=False),
                  epochs=3, time_budget_min=1e-6, device="cpu", progress=False)  # fmt: skip
    assert recipe.warn_if_stopped(history).startswith("WARNING")
    out = capsys.readouterr().out
    assert SAFETY_STOP in out and "after 1 epoch(s)" in out
    history.stopped_reason = "completed"  # a run that ended normally: no warning
    assert recipe.warn_if_stopped(history) == "" and capsys.readouterr().out == ""


def test_full_profile_prints_labkits_assumptions_for_the_report():
    # the full profile keeps the syllabus's settings; where the syllabus gives none the
    # printed recipe names labkit's assumption (report 000 gives no lr, batch or width)
    text = str(get_profile("full").recipe("000.resunet"))
    assert "as the syllabus gives them" in text
    for key in ("lr", "batch_size", "base_width", "optimizer"):
        assert f"\n  - {key}: " in text, key
    assert "labkit's assumptions" not in str(
        get_profile("full").recipe(epochs=3, lr=1e-3, loss="bce")
    )
