"""Each lab's runs have one home, ``labkit.runs.LABS``: adding a lab is one entry there, and
every reader (course plan, bench, ``labkit train``, recipes, report tables) follows it."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from labkit.bench.labs import benched_labs, lab_runs
from labkit.cli import build_parser
from labkit.commands.train import plan as train_plan
from labkit.course.plan import lab_trainings, plan_lab
from labkit.runs import (
    LABS,
    CLITraining,
    Lab,
    ReportFigure,
    Run,
    find_figure,
    get_profile,
    lab_of_model,
    report_settings,
    report_table_md,
)

PACKAGE = Path(__file__).resolve().parents[2] / "labkit"


@pytest.fixture
def lab08(monkeypatch):
    """A new lab 08, added the way a newcomer adds one: one entry in ``LABS``."""
    entry = Lab(
        runs=(Run("unet wide", "001.unet"), Run("unet dice", "001.unet", loss="dice")),
        models=("unet",),
        smoke={"epochs": (3, "a reason"), "batch_size": (4, "another")},
        practical={"epochs": (5, "five epochs: why"), "base_width": (32, "narrower: why")},
        figures=(ReportFigure("008.unet", "report 008", "U-Net", dice=0.5),),
    )
    monkeypatch.setitem(LABS, "08", entry)
    return entry


def test_a_new_labs_runs_are_one_entry_that_every_reader_follows(lab08):
    # recipes: its smoke and practical changes, each practical one with its reason
    smoke = get_profile("smoke").for_lab("08").recipe("001.unet")
    assert (smoke.epochs, smoke.batch_size) == (3, 4)
    practical = get_profile("practical").for_lab("08")
    r = practical.recipe("001.unet")
    assert (r.epochs, r.base_width) == (5, 32)
    assert r.departures == {"epochs": "five epochs: why", "base_width": "narrower: why"}
    assert "five epochs: why" in practical.departures_text()
    # the course plan sizes both runs (one kind of training, two models)
    (training,) = lab_trainings("08")
    assert (training.report, training.models) == ("001.unet", 2)
    plan = plan_lab(get_profile("smoke"), "08", "cpu")
    assert plan["trainings"][0]["models"] == 2 and plan["gflop"] > 0
    # the bench repeats them
    assert "08" in benched_labs() and [x.label for x in lab_runs("08")] == [
        "unet wide", "unet dice"
    ]  # fmt: skip
    # its report figures
    assert find_figure("08", "008.unet").dice == 0.5
    assert "| report 008 | U-Net | 0.500 |" in report_table_md("08")


def test_train_follows_the_lab_that_owns_the_model(lab08, monkeypatch):
    monkeypatch.setitem(LABS, "08", Lab(models=("unet-new",)))  # a model only lab 08 trains
    assert lab_of_model("unet-new") == "08"
    parser = build_parser()  # the command line offers it
    assert parser.parse_args(["train", "--model", "unet-new"]).model == "unet-new"
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        lab_of_model("nope")


def test_the_practical_sizes_of_labkit_train_are_its_labs():
    args = build_parser().parse_args(["train", "--model", "fvpaspp", "--profile", "practical"])
    p = train_plan(args)
    assert p["size"] == LABS["06"].practical["size"][0]
    assert p["kwargs"]["base_width"] == LABS["06"].practical["base_width"][0]


def test_every_entry_is_well_formed():
    known_smoke = {f.name for f in fields(CLITraining)}
    known_practical = {"epochs", "base_width", "size", "images", "lung_images"}
    for lab, entry in LABS.items():
        assert re.fullmatch(r"\d\d", lab)
        assert set(entry.smoke) <= known_smoke, lab
        assert set(entry.practical) <= known_practical, lab
        for value, reason in (*entry.smoke.values(), *entry.practical.values()):
            assert value is not None and isinstance(reason, str) and reason, lab
        for run in entry.runs:
            report_settings(run.report)  # a known report run
        labels = [run.label for run in entry.runs]
        assert len(set(labels)) == len(labels), lab
        assert not entry.cascade or set(entry.cascade) <= set(labels), lab
        keys = [f.key for f in entry.figures]
        assert len(set(keys)) == len(keys), lab
    models = [m for entry in LABS.values() for m in entry.models]
    assert len(set(models)) == len(models)  # one lab per `labkit train --model` name


def test_lab06_notebook_and_bench_train_the_same_ablation_rows():
    rows = LABS["06"].ablation
    benched = {run.label: run.kwargs for run in lab_runs("06")}
    for name, (switches, figure) in rows.items():
        assert benched[name] == switches and find_figure("06", figure) is not None


def _dicts_keyed_by_labs(path: Path) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if len({k for k in keys if isinstance(k, str) and re.fullmatch(r"\d\d", k)}) >= 3:
                found.append(node.lineno)
    return found


def test_no_module_but_runs_labs_holds_a_table_keyed_by_lab():
    """The per-lab folders (exercises/, grade/hidden/) hold one lab a module; elsewhere a
    dict keyed by three or more lab ids is a second home for what LABS holds."""
    others = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if not str(path.relative_to(PACKAGE)).startswith(("exercises/", "grade/hidden/"))
        and path.relative_to(PACKAGE) != Path("runs/labs.py")
        and (lines := _dicts_keyed_by_labs(path))
    }
    assert others == {}
