"""`labkit bench`: the quick run end to end through the CLI, and the parts it trusts.

No timing is asserted (timings belong in benchmarks/RESULTS.md): these tests check that
every section is produced from real measurements, and that the helpers the figures rest on
(the naive comparator, the FLOP count, the memory sampler, the GPU peak table) are right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.bench import BenchSettings
from labkit.bench.flops import count_flops, peak_for_name
from labkit.bench.model import VARIANTS, PeakRSS, build
from labkit.cli import main as cli
from labkit.data.layout import Record
from labkit.data.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A small phantom tree at the real 256 px (more Train images than the data path's
    batch of 32) and a private cache."""
    base = tmp_path_factory.mktemp("bench")
    root = make_phantom(base / "data", n=64, size=256, progress=False)
    return root, base / "cache"


@pytest.mark.slow
def test_quick_bench_through_the_cli_writes_every_section(phantom, tmp_path):
    root, cache = phantom
    out = tmp_path / "bench.json"
    env = {**os.environ, "LABKIT_CACHE": str(cache)}
    argv = ["bench", "--quick", "--device", "cpu", "--data", str(root)]
    argv += ["--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", *argv, "--quiet"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for heading in ("1. Data path", "2. Training step", "3. Inference", "4. FLOPs", "5. Epoch"):
        assert heading in proc.stdout
    r = json.loads(out.read_text())
    for key in ("settings", "machine", "data_path", "flops", "training", "inference", "peak",
                "epoch_estimate", "load_average", "notes"):  # fmt: skip
        assert key in r, key
    s = BenchSettings.quick_settings()
    assert r["settings"]["quick"] is True and r["machine"]["device"] == "cpu"
    assert r["machine"]["torch_threads"] == 1  # --quick's default: robust on a busy machine

    d = r["data_path"]
    for which in ("naive", "labkit_cpu"):
        assert d[which]["images_per_s"] > 0
        assert d[which]["images"] == s.data_batches * s.data_batch
        assert d[which]["iterations"] == s.data_batches
    assert d["naive"]["workers"] == os.cpu_count()
    # every worker starts on a batch at once: the naive warm-up draws one per worker at least
    assert d["naive"]["warmup"] == max(s.data_warmup, os.cpu_count())
    assert d["labkit_cpu"]["warmup"] == s.data_warmup
    assert (s.data_size, s.data_batch) == (256, 32)  # what README quotes
    assert len(d["rounds"]) == s.data_rounds == 5
    ratios = sorted(rd["ratio_b_over_a"] for rd in d["rounds"])
    for rd in d["rounds"]:  # each round's ratio is of that round's two figures
        assert rd["ratio_b_over_a"] == pytest.approx(rd["labkit_cpu"] / rd["naive"])
    assert d["ratio_b_over_a"] == ratios[2] and d["ratio_b_over_a_spread"] == [
        ratios[0],
        ratios[-1],
    ]
    assert sorted(rd["naive"] for rd in d["rounds"])[2] == d["naive"]["images_per_s"]
    assert f"median {d['ratio_b_over_a']:.2f}x, spread" in proc.stdout
    assert d["labkit_cpu"]["syncs_per_batch"] is None  # CUDA sync counting only on CUDA
    for which, ratio in (("labkit_gpu", "ratio_c_over_a"), ("labkit_gpu_pinned", "ratio_d_over_a")):
        assert d[which]["status"].startswith("n/a") and d[ratio] is None
    assert d["decode"]["images"] == d["split_images"] >= s.data_batch

    for name in ("unet", "unet-resnet34"):
        rows = {row["variant"]: row for row in r["training"][name]}
        assert list(rows) == [v.name for v in VARIANTS]
        for variant in ("fp32", "amp+channels_last"):  # measured on a CPU (the latter in fp32)
            row = rows[variant]
            for mode in ("model_only", "end_to_end"):
                assert row[mode]["images_per_s"] > 0 and row[mode]["iterations"] == s.steps
                assert row[mode]["achieved_tflops"] > 0 and row[mode]["fraction_of_peak"] is None
            assert row["end_to_end_over_model_only"] > 0
        assert rows["amp"]["status"] == "same as fp32 (no AMP on cpu)"
        assert rows["amp+channels_last"]["label"] == "fp32+channels_last (no AMP on cpu)"
        assert rows["amp+channels_last+compile"]["status"].startswith("n/a: skipped")
        for row in r["inference"][name]:
            assert row["images_per_s"] > 0 and row["iterations"] == s.infer_steps
            assert row["peak_memory_mb"] is None or row["peak_memory_mb"] >= 0
        flops = r["flops"][name]
        assert set(flops) == {str(s.size), "256"}
        # convolution FLOPs grow with the pixel count: 16x from 64 to 256 px
        ratio = flops["256"]["forward_gflop_per_image"] / flops["64"]["forward_gflop_per_image"]
        assert ratio == pytest.approx(16, rel=0.01)
        est = r["epoch_estimate"]["models"][name]["estimates"]
        assert est["T4"]["seconds"]["central"] > est["H100 SXM"]["seconds"]["central"] > 0
    assert r["peak"]["tflops"] is None


def _conv_flops_by_hooks(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Reference oracle: 2 x multiply-adds of every convolution, from its output shape."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, torch.nn.ConvTranspose2d):  # each input pixel meets the kernel
            n, _, h, w = inputs[0].shape
        else:
            n, _, h, w = output.shape
        total += 2 * n * h * w * k * module.in_channels * module.out_channels // module.groups

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", ["unet", "unet-resnet34"])
def test_flop_count_matches_a_hand_count_of_the_convolutions(name):
    settings = BenchSettings(size=64, models=(name,))
    counted = count_flops(settings, lambda _: None)[name]["64"]
    model, spec = build(name)
    oracle = _conv_flops_by_hooks(model.eval(), torch.zeros(1, spec["in_channels"], 64, 64))
    assert counted["forward_gflop_per_image"] * 1e9 == pytest.approx(oracle, rel=1e-6)
    assert 2.9 < counted["train_over_forward"] <= 3.0  # backward: 2x forward, less the input grad


def test_naive_dataset_moves_image_and_masks_together(tmp_path):
    """The comparator does the real work: one geometry for image and masks, floats in [0, 1]."""
    from labkit.bench.data import NaiveSegDataset

    mask = np.zeros((256, 256), np.uint8)
    mask[60:180, 40:150] = 255
    paths = {}
    for kind, arr in (("image", mask), ("lung", mask), ("infection", 255 - mask)):
        paths[kind] = tmp_path / f"{kind}.png"
        Image.fromarray(arr).save(paths[kind])
    record = Record("infection", "Train", "COVID-19", paths["image"], paths["lung"],
                    paths["infection"])  # fmt: skip
    ds = NaiveSegDataset([record] * 8, size=128)  # 256 px files resized to 128
    torch.manual_seed(0)
    for i in range(len(ds)):
        x, y, lung = ds[i]
        assert x.shape == y.shape == lung.shape == (1, 128, 128) and x.dtype == torch.float32
        assert 0 <= float(x.min()) and float(x.max()) <= 1
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
        # the image is the lung mask drawn bright: after any shift/rotation they still agree
        agree = ((x > 0.5).float() == lung).float().mean()
        assert agree > 0.97, f"item {i}: image and lung mask disagree on {1 - agree:.1%}"
        assert float((lung + y).max()) <= 1  # lung and its complement never overlap


def test_peak_rss_sees_a_large_allocation():
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs /proc (Linux)")
    with PeakRSS() as m:
        big = torch.ones(64, 1024, 1024)  # 256 MiB, touched
        del big
    assert m.rise is not None and m.rise > 200 * 2**20


@pytest.mark.parametrize(
    "name, tflops",
    [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989),
     ("NVIDIA A100-SXM4-40GB", 312), ("NVIDIA L4", 121), ("Tesla T4", 65), ("NVIDIA L40S", None)],
)  # fmt: skip
def test_gpu_peak_table_matches_whole_words(name, tflops):
    found = peak_for_name(name)
    assert (found and found[0]) == tflops


@pytest.mark.parametrize(
    "argv, words",
    [(["--size", "100"], "multiple of 32"), (["--models", "vgg"], "models"),
     (["--steps", "0"], "steps"), (["--out", "x.txt"], ".json")],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_them(argv, words, capsys):
    assert cli(["bench", "--quick", *argv]) == 2
    assert words in capsys.readouterr().err


def test_median_record_picks_the_middle_round():
    from labkit.bench.data import median_record

    recs = [{"images_per_s": v, "round": i} for i, v in enumerate([300.0, 100.0, 200.0])]
    assert median_record(recs)["round"] == 2
    assert median_record(recs[:2])["round"] == 1  # even count: the lower middle one


@pytest.mark.parametrize("groups", [1, 4, 64])
def test_a_convolutions_training_flops_are_three_forwards_whatever_its_groups(groups):
    """Hand-computed: 2 FLOPs x N x C_out x H x W x (C_in / groups) x k x k per forward; the
    backward computes the input's and the weights' gradients, one forward each. torch's own
    formula charged a depthwise convolution's weight gradient `groups` times too much."""
    import torch
    from torch import nn

    from labkit.bench.flops import count_model_flops

    conv = nn.Conv2d(64, 64, 3, padding=1, groups=groups, bias=False).to("meta")
    x = torch.zeros(2, 64, 16, 16, device="meta", requires_grad=True)
    forward = 2 * 2 * 64 * 16 * 16 * (64 // groups) * 3 * 3
    assert count_model_flops(conv, x, backward=False) == forward
    assert count_model_flops(conv, x, backward=True) == 3 * forward
