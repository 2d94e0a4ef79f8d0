"""Every bad-input case of issue 3, on real (broken) PNG files: `labkit data check` reports it
naming the file, and the loader raises the same error (or applies the stated fix with a warning).
"""

from __future__ import annotations

import numpy as np
import pytest
from _data_trees import make_tree, subset_dir, write_png
from PIL import Image

from labkit.cli import main
from labkit.data.cache import load_split
from labkit.data.check import check_dataset


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "data", per_class=2, size=16)


def folder(tree, split="Train", cls="COVID-19", kind="images"):
    return subset_dir(tree) / split / cls / kind


def only(problems, level):
    return [p for p in problems if p.level == level]


def test_clean_tree_passes(tree, capsys):
    report = check_dataset(tree, progress=False)
    assert report.ok and report.problems == []
    assert report.counts["infection"]["Test"] == {"COVID-19": 2, "Non-COVID": 2, "Normal": 2}
    assert main(["data", "check", str(tree), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "usable: 0 error(s)" in out and "Non-COVID" in out and "total" in out


def test_image_without_mask(tree, capsys):
    (folder(tree, kind="lung masks") / "covid_2.png").unlink()
    report = check_dataset(tree, progress=False)
    (err,) = report.errors
    assert err.path.name == "covid_2.png" and "image without lung mask" in err.message
    with pytest.raises(ValueError, match=r"covid_2\.png: image without lung mask"):
        load_split(tree, "Train", size=16, progress=False)
    assert main(["data", "check", str(tree), "--quiet"]) == 1
    assert "NOT usable" in capsys.readouterr().out
    load_split(tree, "Val", size=16, progress=False)  # other splits are still usable


def test_mask_without_image(tree):
    (folder(tree, "Val", "Normal") / "Normal (1).png").unlink()
    report = check_dataset(tree, progress=False)
    assert {p.message.split(" (")[0] for p in report.errors} == {
        "lung mask without image",
        "infection mask without image",
    }
    assert all(p.path.name == "Normal (1).png" for p in report.errors)
    with pytest.raises(ValueError, match=r"Normal \(1\)\.png: lung mask without image"):
        load_split(tree, "Val", size=16, progress=False)


def test_truncated_png(tree):
    path = folder(tree, "Test", "Non-COVID") / "non_COVID (2).png"
    path.write_bytes(path.read_bytes()[:60])
    (err,) = check_dataset(tree, progress=False).errors
    assert err.path == path and "unreadable or truncated PNG" in err.message
    with pytest.raises(
        ValueError, match=r"non_COVID \(2\)\.png: unreadable or truncated PNG"
    ) as err:
        load_split(tree, "Test", size=16, progress=False)
    assert "labkit data check" in str(err.value)


def test_not_a_png_at_all(tree):
    path = folder(tree, kind="infection masks") / "covid_1.png"
    path.write_text("not an image")
    (err,) = check_dataset(tree, progress=False).errors
    assert err.path == path and "unreadable" in err.message


def test_size_mismatch(tree):
    write_png(folder(tree, kind="lung masks") / "covid_1.png", np.zeros((8, 8), np.uint8))
    (err,) = check_dataset(tree, progress=False).errors
    assert err.path.name == "covid_1.png" and "mask size 8x8 differs" in err.message
    with pytest.raises(ValueError, match="mask size 8x8 differs from its image"):
        load_split(tree, "Train", size=16, progress=False)


def test_mask_stored_as_0_1_is_thresholded_above_0(tree):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:9, 3:7] = 1
    write_png(folder(tree, kind="infection masks") / "covid_1.png", mask)
    (warn,) = check_dataset(tree, progress=False).warnings
    assert "0/1" in warn.message and "> 0" in warn.message and warn.path.name == "covid_1.png"
    with pytest.warns(UserWarning, match="thresholded as > 0"):
        data = load_split(tree, "Train", size=16, progress=False)
    assert np.array_equal(data.infection[data.names.index("covid_1.png"), 0].numpy(), mask)


def test_antialiased_mask_is_thresholded_at_128(tree):
    mask = np.zeros((16, 16), np.uint8)
    mask[2:6, 2:6], mask[8:12, 8:12], mask[12:14, 0:4] = 255, 127, 128
    write_png(folder(tree, "Val", "Normal", "lung masks") / "Normal (2).png", mask)
    (warn,) = check_dataset(tree, progress=False).warnings
    assert ">= 128" in warn.message and "127" in warn.message
    with pytest.warns(UserWarning, match=">= 128"):
        data = load_split(tree, "Val", size=16, progress=False)
    assert np.array_equal(
        data.lung[data.names.index("Normal (2).png"), 0].numpy(), (mask >= 128).astype(np.uint8)
    )


def test_rgb_image_is_converted_with_a_warning(tree):
    path = folder(tree) / "covid_2.png"
    grey = np.asarray(Image.open(path))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
    (warn,) = check_dataset(tree, progress=False).warnings
    assert warn.path == path and "stored as RGB; converted to 8-bit grey" in warn.message
    with pytest.warns(UserWarning, match="RGB"):
        data = load_split(tree, "Train", size=16, progress=False)
    assert np.array_equal(data.images[data.names.index("covid_2.png"), 0].numpy(), grey)
    with pytest.warns(UserWarning, match=r"covid_2\.png: image stored as RGB"):
        load_split(tree, "Train", size=16, progress=False)  # from the cache: still said


def test_empty_class_and_split_folders(tree):
    for kind in ("images", "lung masks", "infection masks"):
        for f in folder(tree, "Val", "Normal", kind).iterdir():
            f.unlink()
    test_dir = subset_dir(tree) / "Test"
    for f in sorted(test_dir.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    report = check_dataset(tree, progress=False)
    messages = {(p.path.name, p.message.split(" (")[0]) for p in report.errors}
    assert messages == {("Normal", "empty class folder"), ("Test", "empty split folder")}
    with pytest.raises(ValueError, match="empty class folder"):
        load_split(tree, "Val", size=16, progress=False)


def test_unexpected_files_are_warnings(tree, capsys):
    (folder(tree) / "notes.txt").write_text("x")
    (folder(tree, "Train", "Normal").parent / "README.md").write_text("x")
    (folder(tree, "Train", "Normal", "lung masks") / ".DS_Store").write_text("x")
    (subset_dir(tree) / "Train" / "Extra").mkdir()
    report = check_dataset(tree, progress=False)
    assert report.ok  # usable, but every odd entry is named
    assert {p.path.name for p in report.warnings} == {
        "notes.txt",
        "README.md",
        "Extra",
        ".DS_Store",
    }
    assert main(["data", "check", str(tree), "--quiet"]) == 0
    assert "notes.txt: unexpected file, not a PNG" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="ignored 2 unexpected file") as caught:
        assert len(load_split(tree, "Train", size=16, progress=False)) == 6
    message = str(caught[0].message)
    assert "notes.txt" in message and "README.md" in message and ".DS_Store" not in message


def test_check_of_a_wrong_path_is_a_clean_cli_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "Expected the folder that contains" in capsys.readouterr().err
