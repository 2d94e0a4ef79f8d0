"""Decode PNGs once into uint8 tensors, cache them on disk, and hold them as ``SegData``.

The first ``load_split`` decodes every PNG of a split (in parallel threads: PIL releases the GIL)
and resizes it to ``size``; the result is saved as one ``.pt`` file under
``<cache>/segdata/``. The file name is a hash of the file list (relative paths, sizes,
modification times) and the load options, so adding, removing or editing a file, or asking for
another size, makes a new cache entry instead of serving stale data.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from labkit.data.check import DataFileError, decode_record
from labkit.data.layout import CLASSES, Record, find_subset_dir, index_dataset, relative_name

CACHE_VERSION = 1  # bump when the decoding or resizing changes
# A split goes onto the GPU only if it takes at most this share of the memory left free:
# the rest is headroom for the model, its activations and the other splits. Lab 05's lung
# subset at 448 px (about 13.6 GB with its masks) never goes onto a 16 GB T4.
GPU_DATA_SHARE = 0.5


def fits_on_gpu(nbytes: float, free_bytes: float) -> bool:
    """Whether a split of ``nbytes`` may live on a GPU with ``free_bytes`` free."""
    return nbytes <= GPU_DATA_SHARE * free_bytes


_SAID: set[str] = set()  # the pinned-CPU fallback is said once per process and device


def resident_on(data: SegData, device: torch.device) -> bool:
    """Whether ``BatchLoader`` should copy ``data`` to ``device`` once (``fits_on_gpu``).

    Always on a CPU or MPS device (nothing to gain by keeping a copy elsewhere); on CUDA
    only when the split fits beside the model; otherwise batches are gathered in pinned
    CPU memory, and the first time this happens a line says so.
    """
    if device.type != "cuda" or data.device == device:
        return True
    free, _ = torch.cuda.mem_get_info(device)
    tensors = (data.images, data.lung, data.infection)
    nbytes = sum(t.numel() * t.element_size() for t in tensors if t is not None)
    if fits_on_gpu(nbytes, free):
        return True
    if str(device) not in _SAID:
        _SAID.add(str(device))
        print(
            f"{data.subset}/{data.split}: {nbytes / 1e9:.1f} GB of images and masks stay in "
            f"pinned CPU memory ({free / 1e9:.1f} GB free on {device}; a split may take at "
            f"most {GPU_DATA_SHARE:.0%} of it): batches are copied as they are needed"
        )
    return False


@dataclass
class SegData:
    """A split held in memory. Shapes: ``(N, 1, H, W)`` uint8.

    Attributes:
        images: grey images, 0-255.
        lung: lung masks, {0, 1}.
        infection: infection masks, {0, 1}; ``None`` for the lung subset.
        classes: class of each image (``"COVID-19"``, ``"Non-COVID"``, ``"Normal"``).
        names: file name of each image.
        split: ``"Train"``, ``"Val"`` or ``"Test"``.
        subset: ``"infection"`` or ``"lung"``.
    """

    images: torch.Tensor
    lung: torch.Tensor
    infection: torch.Tensor | None
    classes: list[str]
    names: list[str]
    split: str
    subset: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.class_counts().items())
        size = "x".join(str(s) for s in self.images.shape[-2:])
        return (
            f"SegData({self.subset}/{self.split}, {len(self)} images {size} on "
            f"{self.images.device}; {counts})"
        )

    @property
    def device(self) -> torch.device:
        return self.images.device

    def class_counts(self) -> dict[str, int]:
        """Images per class, in ``CLASSES`` order (classes with no image are left out)."""
        return {c: self.classes.count(c) for c in CLASSES if c in self.classes}

    def to(self, device: str | torch.device, non_blocking: bool = False) -> SegData:
        """A copy whose tensors live on ``device`` (still uint8: 4x less memory than float)."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return replace(
            self, images=move(self.images), lung=move(self.lung), infection=move(self.infection)
        )

    def pin_memory(self) -> SegData:
        """A copy in page-locked memory (faster, asynchronous copies to a CUDA GPU)."""

        def pin(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.pin_memory()

        return replace(
            self, images=pin(self.images), lung=pin(self.lung), infection=pin(self.infection)
        )

    def select(self, indices: Sequence[int] | torch.Tensor) -> SegData:
        """The images at ``indices`` (in that order), with their masks, classes and names."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if len(idx) and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise ValueError(f"indices: out of range for SegData of {len(self)} images")
        pos = idx.tolist()
        dev = idx.to(self.images.device)
        return replace(
            self,
            images=self.images[dev],
            lung=self.lung[dev],
            infection=None if self.infection is None else self.infection[dev],
            classes=[self.classes[i] for i in pos],
            names=[self.names[i] for i in pos],
        )

    def filter(self, classes: str | Sequence[str]) -> SegData:
        """Only the images of ``classes`` (e.g. ``"COVID-19"`` as in reports 000 and 002)."""
        wanted = [classes] if isinstance(classes, str) else list(classes)
        for c in wanted:
            if c not in CLASSES:
                raise ValueError(
                    f"classes: unknown class {c!r}; expected some of {', '.join(CLASSES)}"
                )
        return self.select([i for i, c in enumerate(self.classes) if c in wanted])


def stratified_limit(records: list[Record], limit: int | None) -> list[Record]:
    """At most ``limit`` records, classes kept in proportion (largest remainder), order kept.

    Which images are kept is a fixed pseudo-random choice (seed 0) within each class, so a
    small limit does not just take the lowest-numbered files.
    """
    if limit is None or limit >= len(records):
        return records
    if limit < 1:
        raise ValueError(f"limit: expected a positive number of images or None, got {limit}")
    by_class: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(r.cls, []).append(i)
    total = len(records)
    quota = {c: limit * len(ix) / total for c, ix in by_class.items()}
    take = {c: int(q) for c, q in quota.items()}
    for c in sorted(quota, key=lambda c: quota[c] - take[c], reverse=True)[
        : limit - sum(take.values())
    ]:
        take[c] += 1
    if limit >= len(by_class):  # every class keeps at least one image
        for c in by_class:
            if take[c] == 0:
                donor = max(take, key=take.get)
                take[donor] -= 1
                take[c] = 1
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for c, ix in by_class.items():
        keep += [ix[j] for j in rng.permutation(len(ix))[: take[c]]]
    return [records[i] for i in sorted(keep)]


def cache_key(records: list[Record], base: Path, **options) -> str:
    """Hash of the file list (relative path, size, mtime of every file) and the load options."""
    h = hashlib.sha256()
    h.update(
        json.dumps({"version": CACHE_VERSION, **options}, sort_keys=True, default=str).encode()
    )
    for r in records:
        for p in r.paths():
            st = os.stat(p)
            h.update(f"{relative_name(p, base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _resize(arr: np.ndarray, size: int, mask: bool) -> np.ndarray:
    """Resize a 2-D uint8 array to ``size`` x ``size``.

    Images: PIL bilinear, which is antialiased when shrinking (it widens its filter).
    Masks ({0,1}): the same bilinear resize of 0/255, then ``>= 128``: smoother than nearest
    and keeps the mask centred on the image's pixel grid.
    """
    from PIL import Image

    if arr.shape == (size, size):
        return arr
    if not mask:
        return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR))
    big = Image.fromarray(arr * np.uint8(255)).resize((size, size), Image.Resampling.BILINEAR)
    return (np.asarray(big) >= 128).astype(np.uint8)


def _warn_fixed(fixed: list[str]) -> None:
    if fixed:
        shown = "\n  ".join(fixed[:10])
        more = f"\n  ... and {len(fixed) - 10} more" if len(fixed) > 10 else ""
        warnings.warn(f"{len(fixed)} file(s) fixed on load:\n  {shown}{more}", stacklevel=3)


def rebuild_command(root: str | Path) -> str | None:
    """The command that writes the phantom dataset at ``root`` again (``None``: not one)."""
    import shlex

    from labkit.data.phantom import read_manifest

    found = read_manifest(root)
    if not isinstance(found, dict) or not all(k in found for k in ("n", "seed", "size")):
        return None
    return (
        f"labkit data phantom {shlex.quote(str(root))} --n {found['n']} --seed {found['seed']} "
        f"--size {found['size']} --overwrite"
    )


def damaged_phantom(root: str | Path, problem: str) -> ValueError | None:
    """For a file of labkit's phantom dataset that is damaged or missing: one line naming the
    problem (its file) and the exact command that rebuilds the set; ``None`` for other data."""
    command = rebuild_command(root)
    if command is None:
        return None
    return ValueError(
        f"{problem} - this is labkit's generated phantom data, damaged on disk; rebuild it "
        f"with `{command}`"
    )


def _index(root: str | Path, subset: str, split: str, classes: list[str] | None) -> list:
    """``index_dataset`` for one split; in labkit's phantom, a problem says how to rebuild."""
    try:
        return index_dataset(root, subset, splits=[split], classes=classes)
    except (ValueError, FileNotFoundError) as err:
        lines = str(err).splitlines()  # a header, then the problems one per line
        first = lines[1 if len(lines) > 1 else 0].strip().removeprefix("error: ")
        raise damaged_phantom(root, first) or err from None


def load_split(
    root: str | Path,
    split: str,
    subset: str = "infection",
    size: int = 256,
    classes: str | Sequence[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
    cache: bool = True,
) -> SegData:
    """Load one split as uint8 tensors, decoding the PNGs only the first time.

    Args:
        root: dataset root (see ``resolve_data``; any level ``find_subset_dir`` accepts).
        split: ``"Train"``, ``"Val"`` or ``"Test"``.
        subset: ``"infection"`` or ``"lung"``.
        size: side in pixels after resizing (256 = the real data's size).
        classes: keep only these classes (default: all three).
        limit: at most this many images, classes kept in proportion (``None`` = all).
        progress: show a progress bar while decoding.
        cache: read and write the on-disk cache (``<cache>/segdata``).

    Returns:
        A ``SegData`` on the CPU.

    Raises:
        FileNotFoundError / ValueError: a missing folder, an unpaired, unreadable or mis-sized
            file; the message names the file. Nothing is skipped silently.
    """
    from tqdm.auto import tqdm

    from labkit.data.locate import cache_dir

    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size: expected an image side of at least 8 pixels, got {size!r}")
    records = _index(root, subset, split, classes)
    if not records:
        raise ValueError(f"no images found for split {split!r} of subset {subset!r} in {root}")
    records = stratified_limit(records, limit)
    base = find_subset_dir(root, subset)
    key = cache_key(
        records, base, size=size, subset=subset, split=split, classes=classes, limit=limit
    )
    path = cache_dir() / "segdata" / f"{subset}-{split}-{size}px-{key}.pt"
    if cache and path.is_file():
        try:
            stored = torch.load(path, weights_only=True)
            _warn_fixed(stored.pop("fixed_on_load", []))  # the same warnings as the first load
            return SegData(**stored)
        except Exception as err:  # a damaged cache file is rebuilt, never trusted
            warnings.warn(
                f"ignoring unreadable cache file {path} ({err}); decoding again", stacklevel=2
            )

    n, kinds = len(records), (3 if subset == "infection" else 2)
    out = [np.zeros((n, 1, size, size), dtype=np.uint8) for _ in range(kinds)]
    notes: list = []

    def work(i: int) -> None:
        # Each worker writes only its own slot i: image and masks cannot be misaligned.
        arrays, problems = decode_record(records[i])
        for k, arr in enumerate(arrays):
            out[k][i, 0] = _resize(arr, size, mask=k > 0)
        notes.extend(problems)

    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) + 2)) as pool:
        desc = f"decoding {subset}/{split}"
        try:
            for _ in tqdm(pool.map(work, range(n)), total=n, desc=desc, disable=not progress):
                pass
        except DataFileError as err:
            hint = f" (run `labkit data check {root}` to list every problem)"
            raise damaged_phantom(root, str(err)) or DataFileError(
                err.path, err.message + hint
            ) from None
    fixed = sorted(str(p) for p in notes)
    _warn_fixed(fixed)
    fields = {
        "images": torch.from_numpy(out[0]),
        "lung": torch.from_numpy(out[1]),
        "infection": torch.from_numpy(out[2]) if subset == "infection" else None,
        "classes": [r.cls for r in records],
        "names": [r.name for r in records],
        "split": split,
        "subset": subset,
    }
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a unique temporary name in the same folder: processes on other nodes of a shared
        # disk may have the same pid; os.replace is atomic, so no reader sees half a file
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({**fields, "fixed_on_load": fixed}, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return SegData(**fields)
