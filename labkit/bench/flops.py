"""Section 4 of ``labkit bench``: FLOPs per image, fraction of the device's peak, epoch time.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on a model moved to the
``meta`` device (shapes only, no arithmetic, so 256 px costs nothing on a CPU). It counts
convolutions and matrix products (2 FLOPs per multiply-add), not batch norm, activations
or the optimizer: the memory-bound work a GPU also has to do is what keeps real training
well below the peak.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from labkit.bench.common import BenchSettings
from labkit.bench.model import build

EPOCH_IMAGES = 5826  # the COVID-QU-Ex infection subset: 2913 COVID-19 + 1457 + 1456 images

# Dense (no sparsity) 16-bit tensor-core peaks, TFLOP/s, from the vendors' datasheets:
# bf16 where the GPU has it, fp16 on the T4 and V100. Matched against the device name.
PEAK_TFLOPS: list[tuple[tuple[str, ...], str, float]] = [
    (("H200",), "H200", 989.0),
    (("H100", "PCIe"), "H100 PCIe", 756.0),
    (("H100", "NVL"), "H100 NVL", 835.0),
    (("H100",), "H100 SXM", 989.0),
    (("A100",), "A100", 312.0),
    (("L4",), "L4", 121.0),
    (("T4",), "T4", 65.0),
    (("V100",), "V100", 125.0),
]

# Assumed fraction of the peak a U-Net training step reaches (low, central, high). Not
# measured here: conv nets typically train at 10-25 % of an H100's dense peak and 7-15 % of
# a T4's (it is power-limited), because batch norm, activations and skip concatenations
# are memory-bound and uncounted. A run on the GPU replaces these with measured figures.
EFFICIENCY = {
    "H100 SXM": (989.0, (0.10, 0.15, 0.25)),
    "T4": (65.0, (0.07, 0.10, 0.15)),
}


def peak_for_name(name: str) -> tuple[float, str] | None:
    """``(peak dense 16-bit TFLOP/s, label)`` for a GPU name such as ``"Tesla T4"``, or None."""
    words = set(re.split(r"[\s\-_/]+", name))
    for needed, label, tflops in PEAK_TFLOPS:
        if all(w in words for w in needed):
            return tflops, label
    return None


def device_peak(device: torch.device) -> tuple[float | None, str]:
    """``(peak dense 16-bit TFLOP/s, GPU label)`` for ``device``, or ``(None, why not)``."""
    if device.type != "cuda":
        return None, f"unknown for {device.type}"
    name = torch.cuda.get_device_name(device)
    found = peak_for_name(name)
    if found is None:
        return None, f"unknown GPU {name!r} (not in labkit.bench.flops.PEAK_TFLOPS)"
    return found


def _conv_backward_flop(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    _bias: object,
    _stride: object,
    _padding: object,
    _dilation: object,
    transposed: bool,
    _output_padding: object,
    _groups: int,
    output_mask: list[bool],
    out_shape: object = None,
    **_kwargs: object,
) -> int:
    """A convolution's backward: the input's and the weights' gradients each cost one forward.

    torch's own formula counts the weights' gradient as an ungrouped convolution, so a
    depthwise 3x3 convolution over C channels is charged C times its cost (a 64-channel
    one: 2.4 MFLOP forward, 153 MFLOP for training), which inflated EfficientNet's counts
    3-5x. The forward count (``conv_flop_count``) already divides by the groups.
    """
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_model_flops(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> int:
    """FLOPs of one forward (and backward) of ``model`` on ``x`` (use the ``meta`` device).

    Convolutions and matrix products, 2 FLOPs per multiply-add; a convolution's backward
    is counted by ``_conv_backward_flop`` (grouped convolutions at their real cost).
    """
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        out = model(x)
        if backward:  # a deep-supervision model returns a list of outputs
            sum(o.float().sum() for o in (out if isinstance(out, list) else [out])).backward()
    return counter.get_total_flops()


def count_flops(s: BenchSettings, log: Callable[[str], None]) -> dict[str, Any]:
    """GFLOP per image of one forward and of forward + backward, at the bench size and 256 px."""

    out: dict[str, Any] = {
        "counter": "torch.utils.flop_counter.FlopCounterMode on the meta device "
        "(convolutions and matrix products, 2 FLOPs per multiply-add)"
    }
    for name in s.models:
        log(f"FLOPs of {name}")
        model, spec = build(name)
        model = model.to("meta").train()
        per_size = {}
        for size in sorted({s.size, 256}):
            # batch 2: batch norm in training mode refuses one value per channel
            x = torch.zeros(2, spec["in_channels"], size, size, device="meta")
            fwd, train = (
                count_model_flops(model, x, False) / 2,
                count_model_flops(model, x, True) / 2,
            )
            per_size[str(size)] = {
                "forward_gflop_per_image": fwd / 1e9,
                "train_gflop_per_image": train / 1e9,
                "train_over_forward": train / fwd,
            }
        out[name] = per_size
    return out


def add_peak_fractions(results: dict[str, Any], device: torch.device) -> None:
    """Add achieved TFLOP/s (and the fraction of the peak where it is known) to each figure."""
    peak, label = device_peak(device)
    results["peak"] = {
        "tflops": peak,
        "gpu": label if peak else None,
        "note": None if peak else label,
    }
    size = str(results["settings"]["size"])
    for section, key in (
        ("training", "train_gflop_per_image"),
        ("inference", "forward_gflop_per_image"),
    ):
        for name, rows in results[section].items():
            gflop = results["flops"][name][size][key]
            for row in rows:
                for record in (row.get("model_only"), row.get("end_to_end"), row):
                    if record and "images_per_s" in record:
                        tflops = record["images_per_s"] * gflop / 1e3
                        record["achieved_tflops"] = tflops
                        record["fraction_of_peak"] = None if peak is None else tflops / peak


def epoch_estimate(
    results: dict[str, Any], s: BenchSettings, device: torch.device
) -> dict[str, Any]:
    """Seconds for one training epoch over the 5,826-image infection subset at 256 px.

    Estimates for an H100 and a T4 from the counted training FLOPs and an assumed fraction
    of the peak (``EFFICIENCY``); and, when this run trained at 256 px on a GPU, the
    figure implied by the measured end-to-end throughput.
    """
    out: dict[str, Any] = {
        "images": EPOCH_IMAGES,
        "size": 256,
        "method": "images x counted training GFLOP/image (256 px) / (peak dense 16-bit "
        "TFLOP/s x assumed efficiency); an ESTIMATE, not a measurement",
        "models": {},
    }
    for name in s.models:
        gflop = results["flops"][name]["256"]["train_gflop_per_image"]
        per_gpu = {}
        for gpu, (peak, effs) in EFFICIENCY.items():
            secs = [EPOCH_IMAGES * gflop / (peak * 1e3 * e) for e in effs]
            per_gpu[gpu] = {
                "peak_tflops": peak,
                "efficiency": {"low": effs[0], "central": effs[1], "high": effs[2]},
                "seconds": {"central": secs[1], "range": [secs[2], secs[0]]},
            }
        entry: dict[str, Any] = {"train_gflop_per_image": gflop, "estimates": per_gpu}
        measured = [
            row["end_to_end"]["images_per_s"]
            for row in results["training"].get(name, [])
            if "end_to_end" in row
        ]
        if device.type == "cuda" and s.size == 256 and measured:
            entry["measured_this_gpu_seconds"] = EPOCH_IMAGES / max(measured)
        out["models"][name] = entry
    return out
