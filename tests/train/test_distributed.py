"""fit under torchrun: two real gloo processes on phantom PNGs (issue 19).

The script below is an ordinary training script (no distributed code in it); torchrun
starts it twice. A BatchLoader subclass writes down the image indices each process
trained on, so the test can check the shards: disjoint, and together every image once
per epoch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from labkit.data import BatchLoader, load_split
from labkit.data.phantom import make_phantom
from labkit.losses import build_loss
from labkit.train import TrainConfig
from labkit.train.checkpoint import load_checkpoint, load_model
from labkit.train.step import Forward, validate

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import labkit as lk
    from labkit.data import BatchLoader, load_split

    root, out, epochs, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    seen = []

    class Recording(BatchLoader):  # a real loader that notes what it yields
        def __iter__(self):
            indices = []
            for batch in super().__iter__():
                indices += batch.index.tolist()
                yield batch
            seen.append(indices)

    train = load_split(root, "Train", size=32, progress=False, cache=False)
    val = load_split(root, "Val", size=32, progress=False, cache=False)
    torch.manual_seed(0)
    model = lk.models.build_model("unet", in_channels=1, base_width=4, depth=2)
    history = lk.fit(
        model, Recording(train, 4, seed=3), BatchLoader(val, 4, shuffle=False),
        epochs=epochs, lr=1e-3, device="cpu", progress=False, out_dir=out,
        resume_from=None if resume == "-" else resume,
    )
    rank = int(os.environ.get("RANK", 0))
    with open(os.path.join(out, f"rank{rank}-{resume != '-'}.json"), "w") as f:
        json.dump({"seen": seen, "history": history.to_dict()}, f)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(script, root, out, epochs, resume="-", nproc=2):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}",
           str(script), str(root), str(out), str(epochs), str(resume)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    # 25 Train images: shards of 13 and 12, so with batch 4 rank 0 has 4 batches and rank 1
    # only 3 (uneven inputs, which DDP's Join must handle); 7 Val images: shards of 4 and 3
    root = make_phantom(base / "data", n=40, size=32, progress=False)
    script = base / "train_script.py"
    script.write_text(SCRIPT)
    return root, script


@pytest.mark.slow
def test_two_processes_share_every_epoch_and_write_one_checkpoint_set(phantom, tmp_path):
    root, script = phantom
    n_train = len(load_split(root, "Train", size=32, progress=False, cache=False))
    assert n_train == 25
    run(script, root, tmp_path, epochs=2)
    ranks = [json.loads((tmp_path / f"rank{r}-False.json").read_text()) for r in (0, 1)]
    for epoch in range(2):
        parts = [set(r["seen"][epoch]) for r in ranks]
        assert not parts[0] & parts[1], "the two shards overlap"
        assert sorted(parts[0] | parts[1]) == list(range(n_train)), "an image was missed"
        assert sum(len(r["seen"][epoch]) for r in ranks) == n_train  # each image once
    assert ranks[0]["seen"][0] != ranks[0]["seen"][1]  # a new order each epoch
    # validation scores were gathered: both processes saw the same numbers
    h0, h1 = (r["history"] for r in ranks)
    for key in ("val_loss", "val_dice", "val_dice_all", "train_loss", "train_dice"):
        assert h0[key] == pytest.approx(h1[key], nan_ok=True), key
    assert h0["world_size"] == 2 and h0["best_epoch"] == h1["best_epoch"]
    # one checkpoint set, written by rank 0 only, with the same weights as both ranks had
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "last.pt"]
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 2 and last["history"]["world_size"] == 2
    assert not list(tmp_path.glob(".*.tmp"))
    # the gathered scores are those of the whole validation set: one process scoring
    # last.pt's weights on all of Val gets the numbers the two shards reported for epoch 2
    model = load_model(tmp_path / "last.pt", device="cpu")
    val = BatchLoader(
        load_split(root, "Val", size=32, progress=False, cache=False), 4, shuffle=False
    )
    cfg = TrainConfig(progress=False)
    whole = validate(Forward(model, False), val, build_loss("bce"), torch.device("cpu"), None, cfg)
    for key in ("val_loss", "val_dice", "val_dice_all", "val_dice_pooled"):
        assert whole[key] == pytest.approx(h0[key][-1], rel=1e-5, nan_ok=True), key
    # resume under torchrun: one more epoch after the two
    run(script, root, tmp_path, epochs=3, resume=tmp_path / "last.pt")
    again = [json.loads((tmp_path / f"rank{r}-True.json").read_text()) for r in (0, 1)]
    assert again[0]["history"]["epoch"] == [1, 2, 3]
    assert again[0]["history"]["val_loss"][:2] == pytest.approx(h0["val_loss"])
    third = [set(r["seen"][0]) for r in again]
    assert sorted(third[0] | third[1]) == list(range(n_train)) and not third[0] & third[1]


def test_a_shard_is_every_world_size_th_place_of_the_seeded_order(phantom):
    root, _ = phantom
    data = load_split(root, "Train", size=32, progress=False, cache=False)
    full = BatchLoader(data, 4, seed=3)
    parts = [full.shard(r, 3) for r in range(3)]
    for epoch in (1, 2):
        order = full.order(epoch)
        for r, part in enumerate(parts):
            assert torch.equal(part.order(epoch), order[r::3])
    # lengths: 25 images in 3 shards of 9, 8, 8 -> 3, 2, 2 batches of up to 4
    assert [len(p.order(1)) for p in parts] == [9, 8, 8]
    assert [len(p) for p in parts] == [3, 2, 2]
    assert full.world_size == 1 and len(full.order(1)) == len(data)  # the original unchanged
    with pytest.raises(ValueError, match="rank: expected an int in \\[0, 2\\)"):
        full.shard(2, 2)
    with pytest.raises(ValueError, match="already one shard"):
        parts[0].shard(0, 2)
    with pytest.raises(ValueError, match="cannot be split among"):
        full.shard(0, len(data) + 1)
