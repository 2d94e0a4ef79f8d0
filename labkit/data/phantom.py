"""A synthetic "phantom" COVID-QU-Ex: chest X-rays with lung and infection masks.

The real dataset cannot be downloaded everywhere (no Kaggle access in CI or offline), so
labkit draws its own stand-in and writes it in exactly the real folder layout::

    OUT/Infection Segmentation Data/Infection Segmentation Data/Train/COVID-19/images/covid_1.png
                                                                         /lung masks/covid_1.png
                                                                         /infection masks/covid_1.png
    OUT/Lung Segmentation Data/Lung Segmentation Data/Val/Normal/images/Normal (1).png
    OUT/phantom.json                     (parameters and counts, for caches)

Every loader, notebook and test therefore runs unchanged on phantom or real data.

The cases are meant to teach, not to fool a radiologist:

* COVID-19: 1-4 hazy ground-glass / consolidation patches, mostly peripheral and in the
  lower zones, often in both lungs; the infection mask is exactly where they were drawn.
* Non-COVID: *other* opacities (a nodule, a lobar consolidation, a pleural effusion) that are
  visible but have an empty infection mask, so a model can learn false positives.
* Normal: clear lungs, empty infection mask.

Each image is drawn from its own seed, derived from ``(seed, subset, split, class, index)``,
so the dataset is the same byte for byte whatever the order or number of worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from labkit.data._anatomy import Chest, draw_chest, expose, smooth_noise, smoothstep
from labkit.data.check import png_is_whole

# The layout constants are repeated here (they equal labkit.data.layout's) on purpose: the
# phantom is the independent reference the layout and loader code are tested against.
SPLITS = ("Train", "Val", "Test")
CLASSES = ("COVID-19", "Non-COVID", "Normal")
SUBSETS = {"infection": "Infection Segmentation Data", "lung": "Lung Segmentation Data"}
# Real-style file names; note the spaces and parentheses.
NAME_PATTERNS = {
    "COVID-19": "covid_{}.png",
    "Non-COVID": "non_COVID ({}).png",
    "Normal": "Normal ({}).png",
}
VAL_FRACTION, TEST_FRACTION = 0.16, 0.20  # real COVID-19: 1864 / 466 / 583 of 2913
MIN_N, MIN_SIZE, MAX_SIZE = 12, 32, 2048
FORMAT = 1  # bump when the drawing changes, so caches regenerate
MANIFEST = "phantom.json"


def phantom_counts(n: int) -> dict[str, dict[str, int]]:
    """Images per split and class in one subset of ``n`` images.

    The rule: COVID-19 gets ``n // 2``; of the rest, Non-COVID gets half rounded down and
    Normal the remainder (2:1:1). Within a class of ``c`` images, Test gets
    ``max(1, round_half_up(0.20 c))``, Val ``max(1, round_half_up(0.16 c))`` and Train the
    rest. ``n=240`` gives COVID-19 77/19/24, Non-COVID and Normal 38/10/12 (Train/Val/Test);
    ``n=2913+1457+1456`` would reproduce the real split within one image per cell.

    Raises:
        ValueError: ``n`` is not an int >= 12 (the least that puts an image in every
            split x class folder).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < MIN_N:
        raise ValueError(f"n must be an integer >= {MIN_N} (images per subset), got {n!r}")
    covid = n // 2
    per_class = {"COVID-19": covid, "Non-COVID": (n - covid) // 2}
    per_class["Normal"] = n - covid - per_class["Non-COVID"]
    counts = {split: {} for split in SPLITS}
    for cls, c in per_class.items():
        test = max(1, int(TEST_FRACTION * c + 0.5))
        val = max(1, int(VAL_FRACTION * c + 0.5))
        counts["Train"][cls], counts["Val"][cls], counts["Test"][cls] = c - val - test, val, test
    return counts


def _blob_field(chest: Chest, rng: np.random.Generator, label: int, radius: float, weight):
    """Quadratic elliptic bump around a random point of lung ``label``: 1 at the centre,
    0 on the ellipse, negative outside. Only a window around the ellipse is computed (the
    bump is below -3.8 at its border, so added noise cannot reach 0 there); -100 beyond.

    ``weight(xc, yc)`` ranks 48 candidate centres so that blobs favour some zones.
    """
    size = chest.side.shape[0]
    cand = rng.choice(np.flatnonzero(chest.side.ravel() == label), 48)
    w = weight(chest.xc.ravel()[cand], chest.yc.ravel()[cand])
    row, col = divmod(int(rng.choice(cand, p=w / w.sum())), size)
    r = radius * chest.px
    aspect, angle = rng.uniform(0.6, 1.5), rng.uniform(0, np.pi)
    reach = int(np.ceil(r * max(aspect, 1 / aspect) * 2.2))
    rows = slice(max(row - reach, 0), min(row + reach + 1, size))
    cols = slice(max(col - reach, 0), min(col + reach + 1, size))
    dy = (np.arange(rows.start, rows.stop, dtype=np.float32) - row)[:, None]
    dx = (np.arange(cols.start, cols.stop, dtype=np.float32) - col)[None, :]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / (r * aspect)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (r / aspect)
    field = np.full((size, size), -100.0, np.float32)
    field[rows, cols] = 1.0 - (u * u + v * v)
    return field


def _covid_opacity(rng: np.random.Generator, chest: Chest, size: int):
    """Ground-glass / consolidation patches: (fraction of air filled, infection mask)."""
    # Irregular outlines: each patch is an elliptic bump plus shared smooth noise, cut at 0.
    texture = smooth_noise(rng, size, 18)

    def periphery(x, y):  # COVID-19 pneumonia favours the periphery and the lower zones
        return (0.2 + smoothstep((np.abs(x) - 0.3) / 0.4)) * (0.3 + smoothstep((y + 0.2) / 0.6))

    for attempt in range(6):  # a patch cut away by the lung edge may be too small: redraw
        count = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]))
        first = int(rng.integers(1, 3))
        field = np.full((size, size), -1.0, np.float32)
        for k in range(count):
            label = first if k == 0 or rng.random() < 0.4 else 3 - first  # often bilateral
            radius = rng.uniform(0.1, 0.3) * (1.0 + 0.15 * attempt)
            blob = _blob_field(chest, rng, label, radius, periphery) + 0.6 * texture
            np.maximum(field, blob, out=field)
        mask = (field > 0.0) & chest.lung
        if mask.sum() >= 0.004 * size * size:
            break
    # Hazy: densest inside, fading over the outline (half strength on the mask edge), patchy.
    haze = smoothstep(field / 0.6 + 0.45) * np.clip(0.7 + 0.3 * smooth_noise(rng, size, 28), 0, 1)
    return rng.uniform(0.3, 0.7) * haze, mask


def _other_opacity(rng: np.random.Generator, chest: Chest, size: int) -> np.ndarray:
    """A non-COVID finding: the fraction of air it fills (its infection mask stays empty)."""
    kind = rng.choice(["nodule", "lobar", "effusion", "none"], p=[0.3, 0.35, 0.25, 0.1])
    label = int(rng.integers(1, 3))
    # One lung: a half-plane is enough (the fraction only acts where there is air), and has
    # no edge that could draw a rim along the lung outline.
    one_side = smoothstep((chest.xc if label == 2 else -chest.xc) * chest.px / 3.0)
    if kind == "nodule":  # small, dense, sharp-edged round shadows anywhere in the lung
        out = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            bump = _blob_field(chest, rng, label, rng.uniform(0.03, 0.09), lambda x, y: x * 0 + 1)
            out = np.maximum(out, smoothstep(bump / 0.25))
        return rng.uniform(0.6, 1.0) * out
    if kind == "lobar":  # one lobe filled, bounded by a straight fissure
        upper = rng.random() < 0.5
        fissure = rng.uniform(-0.25, 0.15) + rng.uniform(-0.2, 0.2) * np.abs(chest.xc)
        edge = (fissure - chest.yc) if upper else (chest.yc - fissure)
        edge = edge * chest.px + 3.0 * smooth_noise(rng, size, 10)  # a not-quite-flat border
        lobe = smoothstep(edge / 6.0) * one_side
        return rng.uniform(0.6, 0.9) * lobe * (0.9 + 0.1 * smooth_noise(rng, size, 30))
    if kind == "effusion":  # fluid at a base: meniscus rising laterally, blunted angle
        level = rng.uniform(0.15, 0.4) - 0.25 * np.abs(chest.xc)
        fluid = smoothstep((chest.yc - level) * chest.px / 16.0) * one_side
        return rng.uniform(0.7, 1.0) * fluid
    return np.zeros((size, size), np.float32)


def render_case(rng: np.random.Generator, size: int, cls: str):
    """Draw one chest X-ray of class ``cls``.

    Args:
        rng: the case's random generator (same state, same case).
        size: image side in pixels.
        cls: one of ``CLASSES``.

    Returns:
        ``(image, lung, infection)``: uint8 (size, size) arrays; ``image`` uses 0-255,
        ``lung`` and ``infection`` are {0, 1} and ``infection`` lies inside ``lung``
        (all zero unless ``cls == "COVID-19"``).
    """
    if cls not in CLASSES:
        raise ValueError(f"cls must be one of {CLASSES}, got {cls!r}")
    chest = draw_chest(rng, size)
    infection = np.zeros((size, size), bool)
    if cls == "COVID-19":
        filled, infection = _covid_opacity(rng, chest, size)
        chest.density += filled * chest.air
    elif cls == "Non-COVID":
        chest.density += _other_opacity(rng, chest, size) * chest.air
    image = expose(rng, chest.density, size)
    return image, chest.lung.astype(np.uint8), infection.astype(np.uint8)


def _case_seed(seed: int, subset: str, split: str, cls: str, index: int) -> np.random.SeedSequence:
    """The seed of one image: a pure function of where it sits in the dataset."""
    keys = (list(SUBSETS).index(subset), SPLITS.index(split), CLASSES.index(cls), index)
    return np.random.SeedSequence([seed, *keys])


def _plan(n: int) -> list[tuple[str, str, str, int, str]]:
    """Every case to draw: ``(subset, split, class, index within folder, file name)``.

    File numbers run on through Train, Val and Test, so names are unique within a class.
    """
    counts, cases = phantom_counts(n), []
    for subset in SUBSETS:
        for cls in CLASSES:
            number = 0
            for split in SPLITS:
                for index in range(counts[split][cls]):
                    number += 1
                    cases.append((subset, split, cls, index, NAME_PATTERNS[cls].format(number)))
    return cases


def _write_cases(out: str, seed: int, size: int, cases: list) -> int:
    """Draw and save some cases (runs in worker processes too); returns how many."""
    for subset, split, cls, index, name in cases:
        rng = np.random.default_rng(_case_seed(seed, subset, split, cls, index))
        image, lung, infection = render_case(rng, size, cls)
        folder = Path(out, SUBSETS[subset], SUBSETS[subset], split, cls)
        Image.fromarray(image).save(folder / "images" / name, compress_level=1)
        Image.fromarray(lung * np.uint8(255)).save(folder / "lung masks" / name, compress_level=1)
        if subset == "infection":
            Image.fromarray(infection * np.uint8(255)).save(
                folder / "infection masks" / name, compress_level=1
            )
    return len(cases)


def _manifest(n: int, seed: int, size: int, complete: bool) -> dict:
    from labkit import __version__

    return {
        "generator": "labkit.data.phantom",
        "format": FORMAT,
        "labkit_version": __version__,
        "n": n,
        "seed": seed,
        "size": size,
        "counts": {subset: phantom_counts(n) for subset in SUBSETS},
        "complete": complete,
    }


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)  # atomic: a reader never sees half a file


def read_manifest(out: str | Path) -> dict | None:
    """The ``phantom.json`` of a phantom dataset, or ``None`` if there is none (or unreadable)."""
    try:
        return json.loads(Path(out, MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _is_complete_copy(out: Path, wanted: dict) -> bool:
    """True if ``out`` already holds the phantom ``wanted`` describes: every image and mask
    file there, each a whole PNG (its last bytes are the end chunk; a truncated copy's are
    not). Reads 12 bytes per file, not the pixels."""
    if read_manifest(out) != wanted:
        return False
    for subset, by_split in wanted["counts"].items():
        kinds = ("images", "lung masks", "infection masks")[: 3 if subset == "infection" else 2]
        for split, by_class in by_split.items():
            for cls, count in by_class.items():
                for kind in kinds:
                    folder = out / SUBSETS[subset] / SUBSETS[subset] / split / cls / kind
                    names = os.listdir(folder) if folder.is_dir() else []
                    if len(names) != count or not all(png_is_whole(folder / n) for n in names):
                        return False
    return True


def _ready(out: Path, wanted: dict, overwrite: bool) -> bool:
    """Is ``out`` already this phantom, complete? Else clear a phantom's subset folders in
    it (an interrupted run of the same one, or ``overwrite``) and say False.

    Raises:
        ValueError: ``out`` is a file, a folder that is no phantom, or another phantom
            (without ``overwrite``).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} is a file; expected a folder for the phantom dataset")
    if out.is_dir() and any(out.iterdir()):
        if _is_complete_copy(out, wanted) and not overwrite:
            return True
        found = read_manifest(out)
        # the same phantom, interrupted or with a file missing or damaged: labkit's own
        # bytes, so it is written again (the same arguments give the same bytes)
        same_run = found is not None and found in (wanted, {**wanted, "complete": False})
        if found is None:
            raise ValueError(
                f"out: {out} is not empty and holds no {MANIFEST}, so it is not a phantom "
                "dataset; choose an empty or new folder (labkit never deletes it)"
            )
        if not (overwrite or same_run):  # an interrupted run of the same phantom is redone
            what = (
                "this phantom with images missing or damaged"
                if found == wanted
                else f"a different phantom (n={found.get('n')}, seed={found.get('seed')}, "
                f"size={found.get('size')}, format={found.get('format')}, "
                f"labkit {found.get('labkit_version')})"
            )
            raise ValueError(
                f"out: {out} holds {what}; pass overwrite=True (`labkit data phantom --overwrite`) "
                "to write it again"
            )
        for subset in SUBSETS.values():
            shutil.rmtree(out / subset, ignore_errors=True)
    return False


def make_phantom(
    out: str | Path,
    n: int = 240,
    seed: int = 0,
    size: int = 256,
    progress: bool = True,
    overwrite: bool = False,
    workers: int = 1,
) -> Path:
    """Write a synthetic COVID-QU-Ex (both subsets) into ``out``.

    Counts: each subset (infection, lung) gets ``n`` images, split by `phantom_counts`:
    classes 2:1:1 (COVID-19 gets ``n // 2``, Non-COVID half the rest rounded down, Normal the
    remainder); in each class Test gets ``max(1, round(0.20 c))``, Val
    ``max(1, round(0.16 c))`` and Train the rest (about 64/16/20, as in the real data).
    ``n=240`` gives 77/19/24 COVID-19 and 38/10/12 Non-COVID and Normal images.

    Args:
        out: folder to create (parents too). If it already holds this very phantom
            (same ``phantom.json``, all images there) it is returned without work.
        n: images per subset, at least 12 (one per split x class folder at 2:1:1).
        seed: base seed; the same arguments always give the same bytes.
        size: image side in pixels, 32 to 2048.
        progress: show a tqdm progress bar.
        overwrite: write the phantom again over one already in ``out`` (the same one too,
            e.g. after a file was damaged). Only folders that hold a ``phantom.json`` are
            ever deleted.
        workers: processes to draw with (any number gives the same bytes). Above 1 they are
            started with "spawn", so a script needs the usual ``if __name__ == "__main__":``
            guard; the default 1 needs nothing.

    Returns:
        ``out`` as a ``Path`` (the root that holds both subset folders).

    Raises:
        ValueError: a bad ``n``, ``seed``, ``size`` or ``workers``; ``out`` is a file, or a
            non-empty folder that is not this phantom (and ``overwrite`` is off, or it is not
            a phantom at all).
    """
    counts = phantom_counts(n)  # validates n
    n = int(n)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(size, bool)
        or not isinstance(size, int | np.integer)
        or not MIN_SIZE <= size <= MAX_SIZE
    ):
        raise ValueError(
            f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    seed, size, out = int(seed), int(size), Path(out).expanduser()
    wanted = _manifest(n, seed, size, complete=True)

    if _ready(out, wanted, overwrite):
        return out  # the same phantom, every image there: nothing to do
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, {**wanted, "complete": False})  # marks the folder as ours first
    for subset, kinds in (("infection", 3), ("lung", 2)):
        for split in SPLITS:
            for cls in CLASSES:
                folder = out / SUBSETS[subset] / SUBSETS[subset] / split / cls
                for kind in ("images", "lung masks", "infection masks")[:kinds]:
                    (folder / kind).mkdir(parents=True, exist_ok=True)
    cases = _plan(n)
    assert len(cases) == 2 * sum(sum(c.values()) for c in counts.values())

    from tqdm.auto import tqdm

    chunk = 16
    chunks = [cases[i : i + chunk] for i in range(0, len(cases), chunk)]
    with tqdm(total=len(cases), desc="phantom", unit="img", disable=not progress) as bar:
        if workers == 1:
            for part in chunks:
                bar.update(_write_cases(str(out), seed, size, part))
        else:
            # "spawn": safe even when the parent holds threads (torch, BLAS, a notebook).
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for done in pool.map(
                    _write_cases, *zip(*[(str(out), seed, size, p) for p in chunks])
                ):
                    bar.update(done)
    _write_manifest(out, wanted)
    return out
