"""The phantom generator writes real PNG files in the real COVID-QU-Ex layout.

Layout names are spelled out literally here (not imported) so these tests check the
generator against the dataset's documented layout, not against itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.measure import label

from labkit.data.phantom import make_phantom, phantom_counts, render_case

N, SIZE = 24, 64
SPLITS = ("Train", "Val", "Test")
CLASSES = ("COVID-19", "Non-COVID", "Normal")
SUBSET_DIRS = {"infection": "Infection Segmentation Data", "lung": "Lung Segmentation Data"}
NAME_RE = {
    "COVID-19": re.compile(r"covid_\d+\.png"),
    "Non-COVID": re.compile(r"non_COVID \(\d+\)\.png"),
    "Normal": re.compile(r"Normal \(\d+\)\.png"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_phantom(
        tmp_path_factory.mktemp("ph") / "out", n=N, seed=3, size=SIZE, progress=False
    )


def folder(root: Path, subset: str, split: str, cls: str) -> Path:
    name = SUBSET_DIRS[subset]
    return root / name / name / split / cls


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L", f"{path.name}: mode {im.mode}"
        assert im.size == (SIZE, SIZE)
        return np.asarray(im)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_layout_names_and_pairing(root):
    assert sorted(p.name for p in root.iterdir()) == sorted([*SUBSET_DIRS.values(), "phantom.json"])
    for subset, name in SUBSET_DIRS.items():
        assert [p.name for p in (root / name).iterdir()] == [name]  # the repeated folder
        assert sorted(p.name for p in (root / name / name).iterdir()) == sorted(SPLITS)
        kinds = {"images", "lung masks"} | ({"infection masks"} if subset == "infection" else set())
        for split in SPLITS:
            assert sorted(p.name for p in (root / name / name / split).iterdir()) == sorted(CLASSES)
            for cls in CLASSES:
                here = folder(root, subset, split, cls)
                assert {p.name for p in here.iterdir()} == kinds
                images = sorted(p.name for p in (here / "images").iterdir())
                assert images, f"{here} has no images"
                assert all(NAME_RE[cls].fullmatch(n) for n in images), images
                for kind in kinds - {"images"}:
                    assert sorted(p.name for p in (here / kind).iterdir()) == images


def test_counts_follow_the_rule_and_the_manifest(root):
    manifest = json.loads((root / "phantom.json").read_text())
    assert (manifest["n"], manifest["seed"], manifest["size"]) == (N, 3, SIZE)
    assert manifest["complete"] is True and manifest["labkit_version"]
    for subset in SUBSET_DIRS:
        on_disk = {
            split: {
                cls: len(list((folder(root, subset, split, cls) / "images").iterdir()))
                for cls in CLASSES
            }
            for split in SPLITS
        }
        assert on_disk == phantom_counts(N) == manifest["counts"][subset]
        assert sum(sum(c.values()) for c in on_disk.values()) == N


@pytest.mark.parametrize("n", [12, 13, 14, 15, 40, 99, 240, 1001])
def test_counts_rule(n):
    counts = phantom_counts(n)
    per_class = {cls: sum(counts[s][cls] for s in SPLITS) for cls in CLASSES}
    assert sum(per_class.values()) == n
    assert per_class["COVID-19"] == n // 2
    assert abs(per_class["Non-COVID"] - per_class["Normal"]) <= 1
    assert min(counts[s][c] for s in SPLITS for c in CLASSES) >= 1
    if n >= 240:  # about 64/16/20 within each class
        for cls, c in per_class.items():
            assert abs(counts["Test"][cls] / c - 0.20) < 0.02
            assert abs(counts["Val"][cls] / c - 0.16) < 0.02


def test_counts_rule_reproduces_the_real_covid_split():
    counts = phantom_counts(2913 * 2)  # the real infection subset has 2913 COVID-19 images
    assert [counts[s]["COVID-19"] for s in SPLITS] == [1864, 466, 583]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n": 11}, "n"),
        ({"n": 24.0}, "n"),
        ({"n": True}, "n"),
        ({"size": 16}, "size"),
        ({"size": 4096}, "size"),
        ({"size": 64.0}, "size"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        make_phantom(tmp_path / "out", **{"n": 12, "size": 64, "progress": False, **kwargs})
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_images_and_masks_are_8bit_png(root):
    for path in root.rglob("*.png"):
        pixels = load(path)
        if path.parent.name == "images":
            assert pixels.min() <= 5 and pixels.max() >= 250, f"{path.name} is not full range"
            assert len(np.unique(pixels)) > 64, f"{path.name} has too few grey levels"
        else:
            assert set(np.unique(pixels)) <= {0, 255}, f"{path} is not a binary mask"


def test_mask_semantics(root):
    for split in SPLITS:
        for cls in CLASSES:
            here = folder(root, "infection", split, cls)
            for path in (here / "images").iterdir():
                lung = load(here / "lung masks" / path.name) > 0
                infection = load(here / "infection masks" / path.name) > 0
                assert 0.15 < lung.mean() < 0.5, f"{path.name}: lung fraction {lung.mean():.2f}"
                assert label(lung).max() == 2, f"{path.name}: expected two lung fields"
                assert not (infection & ~lung).any(), f"{path.name}: infection outside lung"
                if cls == "COVID-19":
                    assert infection.sum() >= 8, f"{path.name}: COVID case without infection"
                else:
                    assert not infection.any(), f"{path.name}: {cls} case with infection"


def test_opacity_is_visible_where_the_mask_is(root):
    contrasts = []
    for split in SPLITS:
        here = folder(root, "infection", split, "COVID-19")
        for path in (here / "images").iterdir():
            image = load(path).astype(float)
            lung = load(here / "lung masks" / path.name) > 0
            infection = load(here / "infection masks" / path.name) > 0
            contrasts.append(image[infection].mean() - image[lung & ~infection].mean())
    assert np.mean(contrasts) > 10, contrasts  # grey levels brighter inside the opacity
    assert np.mean(np.array(contrasts) > 0) >= 0.8, contrasts


def test_same_seed_same_bytes_other_seed_other_images(root, tmp_path):
    again = make_phantom(tmp_path / "again", n=N, seed=3, size=SIZE, progress=False)
    assert files(again) == files(root)
    other = files(make_phantom(tmp_path / "other", n=N, seed=4, size=SIZE, progress=False))
    images = [k for k in other if "images" in k]
    assert sum(other[k] != files(root)[k] for k in images) == len(images)


def test_parallel_workers_give_the_same_bytes(tmp_path):
    one = make_phantom(tmp_path / "one", n=12, seed=1, size=32, progress=False, workers=1)
    two = make_phantom(tmp_path / "two", n=12, seed=1, size=32, progress=False, workers=2)
    assert files(one) == files(two)


def test_existing_folder_rules(root, tmp_path):
    # The same phantom again: returned without work (files untouched).
    probe = next(root.rglob("*.png"))
    before = probe.stat().st_mtime_ns
    assert make_phantom(root, n=N, seed=3, size=SIZE, progress=False) == root
    assert probe.stat().st_mtime_ns == before

    out = make_phantom(tmp_path / "ph", n=12, seed=0, size=32, progress=False)
    with pytest.raises(ValueError, match="overwrite=True"):
        make_phantom(out, n=12, seed=1, size=32, progress=False)
    make_phantom(out, n=12, seed=1, size=32, progress=False, overwrite=True)
    assert json.loads((out / "phantom.json").read_text())["seed"] == 1
    assert files(out) == files(
        make_phantom(tmp_path / "fresh", n=12, seed=1, size=32, progress=False)
    )

    # A folder that is not a phantom is never deleted, even with overwrite=True.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not a phantom"):
            make_phantom(mine, n=12, size=32, progress=False, overwrite=overwrite)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="is a file"):
        make_phantom(mine / "notes.txt", n=12, size=32, progress=False)


def test_interrupted_run_is_redone(tmp_path):
    out = make_phantom(tmp_path / "ph", n=12, seed=0, size=32, progress=False)
    manifest = json.loads((out / "phantom.json").read_text())
    victim = next(out.rglob("*.png"))
    victim.unlink()  # as if the run had died before writing this file
    (out / "phantom.json").write_text(json.dumps({**manifest, "complete": False}))
    make_phantom(out, n=12, seed=0, size=32, progress=False)
    assert victim.is_file()
    assert json.loads((out / "phantom.json").read_text())["complete"] is True


@pytest.mark.parametrize("cls", CLASSES)
def test_render_case_contract(cls):
    image, lung, infection = render_case(np.random.default_rng(7), 96, cls)
    assert image.shape == lung.shape == infection.shape == (96, 96)
    assert image.dtype == lung.dtype == infection.dtype == np.uint8
    assert set(np.unique(lung)) == {0, 1} and set(np.unique(infection)) <= {0, 1}
    assert not (infection & (1 - lung)).any()
    assert infection.any() == (cls == "COVID-19")
    again = render_case(np.random.default_rng(7), 96, cls)
    assert all(np.array_equal(a, b) for a, b in zip((image, lung, infection), again))
    with pytest.raises(ValueError, match="cls"):
        render_case(np.random.default_rng(7), 96, "covid")
