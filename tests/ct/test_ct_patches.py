"""The patch sampler's positive share, and the patch loader (memory bounded by patches)."""

from __future__ import annotations

import pytest
import torch
from _ct_trees import small_ct_tree

from labkit.ct.dataset import load_ct_volumes
from labkit.ct.layout import index_ct
from labkit.ct.patches import PatchLoader, positive_fraction, sample_patch_starts


def test_a_positive_patch_around_a_corner_voxel_is_clamped_into_the_volume():
    # one infection voxel at (9, 9, 9) of a 10^3 volume, 4^3 patches: start = 9 - offset
    # (6..9) clamped to the last valid start 6, so every positive patch starts at (6, 6, 6)
    positives = torch.tensor([[9, 9, 9]])
    starts = sample_patch_starts(
        (10, 10, 10), positives, (4, 4, 4), 8, 0.5, torch.Generator().manual_seed(0)
    )
    assert starts.dtype == torch.int64 and starts.shape == (8, 3)
    assert (starts[:4] == 6).all()
    assert ((starts[4:] >= 0) & (starts[4:] <= 6)).all()


def test_the_first_round_n_share_patches_contain_infection():
    positives = torch.tensor([[2, 30, 5], [3, 30, 5]])
    g = torch.Generator().manual_seed(1)
    starts = sample_patch_starts((40, 40, 12), positives, (8, 8, 4), 10, 0.3, g)
    inside = [
        ((positives >= s) & (positives < s + torch.tensor([8, 8, 4]))).all(1).any() for s in starts
    ]
    assert all(inside[:3])
    same = sample_patch_starts(
        (40, 40, 12), positives, (8, 8, 4), 10, 0.3, torch.Generator().manual_seed(1)
    )
    assert torch.equal(starts, same)


def test_no_infection_means_uniform_patches_and_bad_arguments_are_named():
    none = sample_patch_starts((10, 10, 10), torch.zeros(0, 3, dtype=torch.long), (4, 4, 4), 5, 1.0)
    assert none.shape == (5, 3)
    with pytest.raises(ValueError, match=r"patch \(12, 4, 4\) is larger than the volume"):
        sample_patch_starts((10, 10, 10), torch.zeros(0, 3, dtype=torch.long), (12, 4, 4), 1)
    with pytest.raises(ValueError, match="positive_share must be in"):
        sample_patch_starts((10, 10, 10), torch.zeros(0, 3, dtype=torch.long), (4, 4, 4), 1, 1.5)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    root = small_ct_tree(tmp_path_factory.mktemp("ct"))
    return load_ct_volumes(index_ct(root), min_size=(8, 8, 8), progress=False)


def test_volumes_are_padded_up_to_the_patch_and_keep_their_stored_shape(volumes):
    assert volumes[0].image.shape == (12, 10, 8) and volumes[0].shape == (12, 10, 6)
    assert volumes[0].image.dtype == torch.uint8
    # both conventions: background (-1000 HU, or 40 of 255) and infection agree within a step
    assert abs(int(volumes[0].image[0, 0, 0]) - int(volumes[2].image[0, 0, 0])) <= 2
    assert abs(int(volumes[0].image[3, 2, 2]) - int(volumes[2].image[3, 2, 2])) <= 2


def test_the_loader_makes_lung_masked_patch_batches_with_the_stated_share(volumes):
    loader = PatchLoader(volumes, (8, 8, 8), batch_size=3, patches_per_volume=4, lung_only=True)
    batches = list(loader)
    assert len(batches) == len(loader) == 6  # 16 patches in batches of 3
    x, y = batches[0]
    assert x.shape == y.shape == (3, 1, 8, 8, 8) and x.dtype == torch.float32
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert positive_fraction(loader) >= 0.5
    loader.set_epoch(0)
    again = next(iter(loader))
    assert torch.equal(again[0], x)  # the same epoch draws the same patches
    unmasked = PatchLoader(volumes, (8, 8, 8), batch_size=3, patches_per_volume=4, lung_only=False)
    xu = next(iter(unmasked))[0]  # the same seed and epoch: the same patches, not masked
    kept = x != 0
    assert torch.equal(x[kept], xu[kept])  # inside the lung the image is untouched
    assert (xu != 0).sum() > kept.sum()  # outside it, the masked input is 0
