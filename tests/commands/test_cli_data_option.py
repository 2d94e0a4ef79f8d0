"""A wrong ``--data`` path: one line naming ``--data`` and what was expected, and a "Did you
mean" only for a folder the student plausibly meant (never labkit's cache or a temp folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from _data_trees import make_tree, subset_dir

from labkit.cli import main as cli
from labkit.data.layout import nearest_match
from labkit.data.locate import phantom_root, resolve_data

EXPECTED = "Expected the folder that contains 'Infection Segmentation Data'"


@pytest.fixture
def planted_cache():
    """A dataset where the trial found one: labkit's cache (a phantom's folder) directly
    in the temporary folder, as ``LABKIT_CACHE=/tmp/...`` puts it."""
    cache = Path(tempfile.mkdtemp(prefix="labkit-cache-"))
    try:
        make_tree(cache / phantom_root(240).name, per_class=1, size=8)
        yield cache
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_a_missing_data_path_is_one_line_without_an_unrelated_suggestion(planted_cache, tmp_path):
    missing = Path(tempfile.gettempdir()) / f"zz{uuid.uuid4().hex}"  # no close name there
    env = dict(os.environ, LABKIT_CACHE=str(planted_cache), LABKIT_PROFILE="smoke")
    argv = ["train", "--model", "unet", "--data", str(missing), "--out", str(tmp_path / "run")]
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"labkit train: error: --data: dataset root {missing} ")
    assert "does not exist" in lines[0] and EXPECTED in lines[0]
    assert "Did you mean" not in lines[0] and str(planted_cache) not in lines[0]
    assert not (tmp_path / "run").exists()  # refused before --out was written to


def test_a_folder_that_is_no_dataset_names_no_neighbour(tmp_path):
    make_tree(tmp_path / "course" / "covidqu", per_class=1, size=8)  # unrelated, two levels away
    notes = tmp_path / "notes"
    (notes / "week1").mkdir(parents=True)
    assert nearest_match(notes) is None
    with pytest.raises(FileNotFoundError) as err:
        resolve_data(notes)
    assert "Did you mean" not in str(err.value) and "no COVID-QU-Ex layout" in str(err.value)


def test_plausible_suggestions_are_kept(tmp_path):
    tree = make_tree(tmp_path / "data" / "covidqu", per_class=1, size=8)
    assert nearest_match(tree.parent / "covidq") == tree  # a typo
    (tree.parent / "covidqu.zip").write_bytes(b"PK")  # the archive given, not the folder
    assert nearest_match(tree.parent / "covidqu.zip") == tree
    assert nearest_match(tree.parent) == tree  # the folder above the data
    assert nearest_match(subset_dir(tree) / "Train" / "COVID-19") == subset_dir(tree)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "unet"],
        ["course", "run", "--labs", "02"],
        ["grade", "SUBS", "--lab", "02", "--out", "OUT"],
        ["bench", "--quick"],
    ],
)
def test_every_command_with_data_names_it(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "SUBS").mkdir()
    missing = tmp_path / "no-data-here"
    assert cli([*argv, "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"error: --data: dataset root {missing} does not exist" in err and EXPECTED in err
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "runs").exists()
