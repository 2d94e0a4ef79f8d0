"""`labkit data ...` commands and the phantom cache, run for real (subprocesses where it matters)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _data_trees import make_tree

from labkit.cli import main
from labkit.data.check import check_dataset
from labkit.data.download import kaggle_reachable, manual_instructions
from labkit.data.locate import ensure_phantom, phantom_root


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LABKIT_DATA", raising=False)


def test_phantom_command_writes_a_checkable_tree(tmp_path, capsys):
    out = tmp_path / "my phantom"
    assert (
        main(["data", "phantom", str(out), "--n", "12", "--size", "32", "--seed", "3", "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"export LABKIT_DATA={out}" in printed and "infection subset" in printed
    report = check_dataset(out, progress=False)
    assert report.ok, report.problems
    assert sum(sum(row.values()) for row in report.counts["infection"].values()) == 12
    # refused while the command line is read (argparse's exit code, returned)
    assert main(["data", "phantom", str(out), "--n", "0"]) == 2


def test_phantom_command_keeps_a_whole_copy_and_rewrites_a_damaged_one(tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["data", "phantom", str(out), "--n", "12", "--size", "32", "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0  # the same settings, every file whole: nothing is written
    assert "kept, nothing written" in capsys.readouterr().out
    # a truncated image and a deleted mask (what a new user tried): written again, and said
    image = next((out / "Infection Segmentation Data").rglob("images/*.png"))
    image.write_bytes(image.read_bytes()[:-20])
    next((out / "Infection Segmentation Data").rglob("infection masks/*.png")).unlink()
    assert not check_dataset(out, progress=False).ok
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "phantom dataset written to" in printed and "kept" not in printed
    assert check_dataset(out, progress=False).ok


def test_info_command_counts_images(tmp_path, capsys):
    root = make_tree(tmp_path / "d", subsets=("lung",), per_class=2, size=8)
    assert main(["data", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "infection subset: not present" in out
    assert [line.split() for line in out.splitlines() if line.startswith("total")] == [
        ["total", "6", "6", "6", "18"]
    ]
    assert main(["data", "info", str(tmp_path / "nope")]) == 2


def test_phantom_is_generated_once_and_reused(tmp_path):
    root = ensure_phantom(12, size=32, progress=False)
    assert root == phantom_root(12, 0, 32) and (root / "phantom.json").is_file()
    stamp = (root / "phantom.json").stat().st_mtime_ns
    assert ensure_phantom(12, size=32, progress=False) == root
    assert (root / "phantom.json").stat().st_mtime_ns == stamp
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary folders left


def test_two_processes_racing_for_the_phantom(tmp_path):
    code = "from labkit.data.locate import ensure_phantom; print(ensure_phantom(12, size=32, progress=False))"
    env = {"LABKIT_CACHE": str(tmp_path / "race"), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    paths = {Path(out.strip()) for out, _ in results}
    assert paths == {tmp_path / "race" / "phantom-n12-s0-px32"}
    assert check_dataset(paths.pop(), progress=False).ok
    assert [p.name for p in (tmp_path / "race").iterdir()] == ["phantom-n12-s0-px32"]


def test_reachability_probe_is_fast_and_needs_real_tls():
    start = time.monotonic()
    with socket.socket() as server:  # accepts TCP but never speaks TLS: not Kaggle
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not kaggle_reachable("127.0.0.1", port, timeout=1)
    assert not kaggle_reachable("127.0.0.1", port, timeout=1)  # nothing listens now
    assert not kaggle_reachable("10.255.255.1", 443, timeout=1)  # unroutable
    assert time.monotonic() - start < 5


def test_download_offline_fails_fast_with_instructions(tmp_path, capsys):
    if kaggle_reachable(timeout=3):
        pytest.skip("www.kaggle.com is reachable here: the offline path cannot be exercised")
    start = time.monotonic()
    assert main(["data", "download", "--dest", str(tmp_path / "covidqu")]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert "https://www.kaggle.com/datasets/anasmohammedtahir/covidqu" in err
    assert f"export LABKIT_DATA={tmp_path / 'covidqu'}" in err
    assert "Infection Segmentation Data/Infection Segmentation Data/Train" in manual_instructions()


def test_resolve_data_phantom_uses_the_profile_and_the_cache(tmp_path, monkeypatch):
    from dataclasses import replace

    from labkit.data.locate import describe_data_location, resolve_data
    from labkit.runs import get_profile

    tiny = replace(get_profile("smoke"), name="tiny", phantom_n=12)
    assert "generated on first use" in describe_data_location("phantom")
    root = resolve_data("phantom", tiny.phantom_n, progress=False)
    assert root == tmp_path / "cache" / "phantom-n12-s0-px256"
    assert check_dataset(root, decode=False).ok
    monkeypatch.setenv("LABKIT_DATA", "phantom")
    assert resolve_data(phantom_n=tiny.phantom_n) == root  # generated once, then reused
