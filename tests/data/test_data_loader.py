"""BatchLoader and SegDataset on a real decoded split."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch
from _data_trees import make_tree

from labkit.data.augment import Augment
from labkit.data.cache import load_split
from labkit.data.loader import BatchLoader, SegDataset
from labkit.data.preprocess import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_tree(
        tmp_path_factory.mktemp("tree"), subsets=("infection", "lung"), per_class=4, size=16
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE", str(root / "cache"))
        train = load_split(root, "Train", size=16, progress=False)
        lung = load_split(root, "Train", subset="lung", size=16, progress=False)
    return train, lung


@pytest.mark.parametrize(
    ("inputs", "channels"), [("grey", 1), ("rgb", 3), ("grey+lung", 2), ("rgb+lung", 4)]
)
def test_input_modes_shapes_and_values(data, inputs, channels):
    train, _ = data
    loader = BatchLoader(train, 5, shuffle=False, inputs=inputs)
    batch = next(iter(loader))
    assert batch.x.shape == (5, channels, 16, 16) and batch.x.dtype == torch.float32
    assert batch.y.shape == batch.lung.shape == (5, 1, 16, 16)
    assert torch.equal(batch.index, torch.arange(5))
    grey = train.images[:5].float() / 255
    if inputs.startswith("grey"):
        assert torch.allclose(batch.x[:, :1], grey)
    else:
        for c in range(3):
            assert torch.allclose(
                batch.x[:, c : c + 1], (grey - IMAGENET_MEAN[c]) / IMAGENET_STD[c], atol=1e-6
            )
    if inputs.endswith("+lung"):
        assert torch.equal(batch.x[:, -1:], train.lung[:5].float())
    assert torch.equal(batch.y, train.infection[:5].float())


def test_lung_target_and_lung_only(data):
    _, lung = data
    batch = next(iter(BatchLoader(lung, 4, shuffle=False, target="lung", lung_only=True)))
    assert torch.equal(batch.y, lung.lung[:4].float())
    assert torch.allclose(batch.x, lung.images[:4].float() / 255 * lung.lung[:4])
    assert batch.x[lung.lung[:4] == 0].abs().max() == 0
    with pytest.raises(ValueError, match="no infection masks"):
        BatchLoader(lung, 4)


def test_every_image_once_per_epoch_and_len(data):
    train, _ = data  # 12 images
    loader = BatchLoader(train, 5)
    assert len(loader) == 3 and len(BatchLoader(train, 5, drop_last=True)) == 2
    seen = torch.cat([b.index for b in loader])
    assert sorted(seen.tolist()) == list(range(12))
    dropped = [len(b.index) for b in BatchLoader(train, 5, drop_last=True)]
    assert dropped == [5, 5]


def test_shuffle_is_a_function_of_seed_and_epoch(data):
    train, _ = data
    a, b = BatchLoader(train, 4, seed=1), BatchLoader(train, 4, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert torch.equal(torch.cat([x.index for x in a]), torch.cat([x.index for x in b]))
    assert not torch.equal(a.order(0), a.order(1))
    assert not torch.equal(a.order(0), BatchLoader(train, 4, seed=2).order(0))
    # Iterating again without set_epoch moves on to the next epoch.
    c = BatchLoader(train, 4, seed=1)
    first, second = torch.cat([x.index for x in c]), torch.cat([x.index for x in c])
    assert torch.equal(first, c.order(0)) and torch.equal(second, c.order(1))


def test_augmented_batches_are_deterministic_and_masks_follow(data):
    train, _ = data
    aug = Augment(hflip=1.0, p_affine=0.0, p_color=0.0, p_noise=0.0)
    batch = next(iter(BatchLoader(train, 6, shuffle=False, augment=aug)))
    assert torch.equal(batch.x, train.images[:6].float().flip(-1) / 255)
    assert torch.equal(batch.y, train.infection[:6].float().flip(-1))
    assert torch.equal(batch.lung, train.lung[:6].float().flip(-1))
    full = Augment.report003()
    run1 = [b.x for b in BatchLoader(train, 6, augment=full, seed=4)]
    run2 = [b.x for b in BatchLoader(train, 6, augment=full, seed=4)]
    assert all(torch.equal(p, q) for p, q in zip(run1, run2))
    assert set(torch.cat([b.y for b in BatchLoader(train, 6, augment=full)]).unique().tolist()) <= {
        0.0,
        1.0,
    }


def test_bad_arguments(data):
    train, _ = data
    with pytest.raises(ValueError, match="inputs"):
        BatchLoader(train, 4, inputs="rgba")
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(train, 0)
    with pytest.raises(ValueError, match="target"):
        BatchLoader(train, 4, target="lungs")
    with pytest.raises(ValueError, match="SegData"):
        BatchLoader([1, 2], 4)


def test_segdataset_with_a_dataloader(data):
    train, _ = data
    ds = SegDataset(train, inputs="rgb+lung")
    item = ds[3]
    assert item.x.shape == (4, 16, 16) and item.y.shape == (1, 16, 16) and int(item.index) == 3
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=False)
    batches = list(loader)
    assert [len(b.index) for b in batches] == [5, 5, 2]
    fast = next(iter(BatchLoader(train, 5, shuffle=False, inputs="rgb+lung")))
    assert torch.allclose(batches[0].x, fast.x) and torch.equal(batches[0].y, fast.y)
    with pytest.raises(IndexError):
        ds[12]
    flipped = SegDataset(train, augment=Augment(hflip=1.0, p_affine=0.0, p_color=0.0, p_noise=0.0))
    assert torch.equal(flipped[0].y, train.infection[0].float().flip(-1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("resident", [True, False])
def test_batches_on_the_gpu(data, resident):
    train, _ = data
    loader = BatchLoader(
        train, 4, device="cuda", resident=resident, augment=Augment.report003(), inputs="rgb+lung"
    )
    assert (loader.data.device.type == "cuda") == resident
    batches = list(loader)
    assert all(b.x.is_cuda and b.y.is_cuda and not b.index.is_cuda for b in batches)
    plain = next(iter(BatchLoader(train, 4, device="cuda", resident=resident, shuffle=False)))
    assert torch.equal(plain.y.cpu(), train.infection[:4].float())


_FAULTS = """
import resource, sys, torch
from labkit.data.augment import Augment
from labkit.data.cache import load_split
from labkit.data.loader import BatchLoader
from labkit.device import keep_freed_memory
torch.set_num_threads(1)
data = load_split(sys.argv[1], "Train", size=256, progress=False, cache=False)
loader = BatchLoader(data, len(data), augment=Augment.report003(), seed=0)
batches = (b for _ in range(100) for b in loader)
for _ in range(3):  # the first batches map their pages either way
    next(batches)
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    next(batches)
print(keep_freed_memory(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 20)
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="keep_freed_memory acts on glibc only",
)
def test_cpu_batches_reuse_freed_memory(tmp_path):
    """A CPU batch is a few fresh multi-MB tensors: with labkit's malloc setting (set by the
    loader) later batches reuse pages earlier ones freed; with glibc's fixed default
    thresholds (what a user's own ``MALLOC_TRIM_THRESHOLD_`` gives) every batch faults its
    pages in again. Fresh processes: the setting is process-wide."""
    root = make_tree(tmp_path, per_class=6, size=256)  # 12 Train images: a 9 MiB float batch
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def faults(extra: dict[str, str]) -> tuple[str, float]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, str(root)],
            capture_output=True, text=True, env={**env, **extra}, check=True,
        )  # fmt: skip
        kept, per_batch = out.stdout.split()
        return kept, float(per_batch)

    kept, with_setting = faults({})
    assert kept == "True"
    assert with_setting < 100, f"expected pages reused, got {with_setting} faults per batch"
    kept, without = faults({"MALLOC_TRIM_THRESHOLD_": str(128 * 1024)})
    assert kept == "False"
    assert without > 10 * max(with_setting, 100), (with_setting, without)
