"""``labkit course plan``: what each lab trains in a profile, and how long it should take.

Per lab: images x epochs of every training, the training FLOPs counted by
``torch.utils.flop_counter`` on the ``meta`` device (``labkit.bench.flops``: shapes only, so
448 px costs nothing on a CPU), the estimated minutes on a device, a peak GPU memory estimate
and whether the cached split fits in GPU memory beside the model
(``labkit.data.cache.fits_on_gpu``, the rule ``BatchLoader`` follows).

Every figure here is an ESTIMATE: minutes = FLOPs / (the device's dense 16-bit peak x an
assumed efficiency), with a low-high range from the efficiency's range; on the CPU a rate
measured on a 2-core machine (``CPU_GFLOPS``). Memory = weights, gradients and Adam's two
moments in fp32, plus the tensors autograd saves for one batch (counted on ``meta``; halved
under fp16 AMP), plus the cached split when it is GPU-resident.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import torch

from labkit.bench.flops import EFFICIENCY, PEAK_TFLOPS, count_model_flops, peak_for_name
from labkit.data.cache import fits_on_gpu
from labkit.data.phantom import phantom_counts
from labkit.models import build_model
from labkit.runs import LABS, Profile, report_settings

# COVID-QU-Ex per split and class (syllabus; the lung subset as published on Kaggle).
REAL_COUNTS = {
    "infection": {
        "Train": {"COVID-19": 1864, "Non-COVID": 932, "Normal": 932},
        "Val": {"COVID-19": 466, "Non-COVID": 233, "Normal": 233},
        "Test": {"COVID-19": 583, "Non-COVID": 292, "Normal": 291},
    },
    "lung": {  # 33,920 images; Train 21,715 / Val 5,417 / Test 6,788
        "Train": {"COVID-19": 7658, "Non-COVID": 7208, "Normal": 6849},
        "Val": {"COVID-19": 1903, "Non-COVID": 1802, "Normal": 1712},
        "Test": {"COVID-19": 2395, "Non-COVID": 2253, "Normal": 2140},
    },
}
# name -> (label in labkit.bench.flops.PEAK_TFLOPS, usable memory GB). Memory: T4 16 GB
# (about 15 usable), L4 24 GB, Colab's A100 40 GB, H100 80 GB.
GPUS: dict[str, tuple[str, float]] = {
    "t4": ("T4", 15.0),
    "l4": ("L4", 22.5),
    "a100": ("A100", 40.0),
    "h100": ("H100 SXM", 80.0),
}
DEVICES = (*GPUS, "cpu")
# Assumed fraction of the peak where labkit.bench.flops.EFFICIENCY has no figure: conv nets
# train at roughly 8-20 % of a GPU's dense 16-bit peak (an assumption, not measured here).
DEFAULT_EFFICIENCY = (0.08, 0.12, 0.20)
# Effective training rate on a CPU, GFLOP/s = counted training FLOPs / training wall time,
# measured on a 2-core VM (benchmarks/RESULTS.md, session 5): with two threads on the idle
# machine (`labkit course run`, smoke) lab 02's U-Net reached 91, lab 04's ResNet34 86,
# EfficientNet-B0 43-48, lab 06's width-8 models 34, lab 07's small 3-D models 11; low 5 =
# one thread on the same VM kept busy by five other jobs. Central 40: the 2-D models'
# middle, so EfficientNet and 3-D labs take longer than their FLOPs say.
CPU_GFLOPS = (5.0, 40.0, 90.0)  # low, central, high


@dataclass(frozen=True)
class Training:
    """One kind of training in a lab (``models`` times, the same settings each time): the
    lab's runs (``labkit.runs.LABS``) that cost the same, counted together.

    Its settings come from ``Profile.recipe(report)``, as in the notebooks.

    Args:
        report: ``labkit.runs.REPORT_SETTINGS`` key.
        models: how many models the lab trains this way.
        model: another model trained with the report's settings (e.g. lab 04's B0).
        in_channels: input channels.
        epochs: the report's epochs for this stage, if not the run's (a lung stage).
        subset: ``"infection"`` or ``"lung"`` (the lung subset keeps the profile's
            ``images(subset="lung")`` per split, as lab 05 loads it).
    """

    report: str
    models: int = 1
    model: str | None = None
    in_channels: int | None = None
    epochs: int | None = None
    subset: str = "infection"


def lab_trainings(lab: str) -> list[Training]:
    """What ``lab`` trains, from its runs: runs of one report, model, input and stage are
    one ``Training`` (an ablation's switches and a run's loss do not change the estimate)."""
    found: dict[tuple, Training] = {}
    for run in LABS[lab].runs:
        stage = report_settings("003.cascade").stages[run.stage] if run.stage else {}
        channels = _channels(run.inputs or report_settings(run.report).inputs)
        key = (run.report, run.model, channels, run.stage)
        t = found.get(key) or Training(
            run.report,
            0,
            run.model,
            channels,
            stage.get("epochs"),
            stage.get("subset", "infection"),
        )
        found[key] = replace(t, models=t.models + 1)
    return list(found.values())


CT_LAB = "07"  # lab 07 trains 3-D patches with its own settings (labkit.ct.settings)
CT_TRAIN_VOLUMES = 14  # report 004: 20 CT volumes, 14 / 2 / 4 train / val / test


@functools.lru_cache(maxsize=16)
def ct_costs(width: int, depth: int, patch: tuple[int, int, int]) -> dict:
    """``count_costs`` for lab 07's 3-D network on one ``(X, Y, Z)`` patch (``meta`` device)."""
    net = build_model("fvpaspp3d", base_width=width, depth=depth).to("meta").train()
    x = torch.zeros(2, 1, *patch, device="meta")
    fwd, train = count_model_flops(net, x, backward=False), count_model_flops(net, x, backward=True)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    params = sum(p.numel() for p in net.parameters())
    return {"train_gflop": train / 2e9, "forward_gflop": fwd / 2e9, "params": params,
            "saved_bytes": saved[0] / 2}  # fmt: skip


def plan_ct(profile: Profile) -> list[dict[str, Any]]:
    """Lab 07's trainings (one per ablation row, Tables 2-3) as ``plan_training`` rows."""
    from labkit.ct.settings import ct_settings

    c = ct_settings(profile.name)
    costs = ct_costs(c.base_width, c.depth, tuple(c.patch))
    n = CT_TRAIN_VOLUMES * c.patches_per_volume  # patches per epoch
    return [{
        "report": "004.ct", "model": "fvpaspp3d", "models": len(c.ablation), "train_images": n,
        "val_images": 0, "epochs": c.epochs, "size": "x".join(map(str, c.patch)),
        "batch": c.batch_size, "gflop": len(c.ablation) * c.epochs * n * costs["train_gflop"],
        "params": costs["params"], "saved_bytes_per_image": costs["saved_bytes"],
        "cache_bytes": 0, "counted": "now", "unit": "patches",
    }]  # fmt: skip


def _channels(inputs: str) -> int:
    return 1 + 2 * inputs.startswith("rgb") + inputs.endswith("+lung")


# Counted once at 256 px by `count_costs` (train GFLOP/image, forward GFLOP/image, parameters,
# bytes autograd saves per image): (model, in_channels, base_width, repr(kwargs)) -> figures.
# Looking them up keeps a notebook's estimate instant (counting builds every model, which
# takes minutes for the smp encoders on a busy CPU); tests recount entries against this.
COUNTED_256: dict[tuple, tuple[float, float, int, float]] = {
    ("fvpaspp", 1, 32, "{}"): (94.9281, 31.6553, 4333259, 380315552),
    ("fvpaspp", 1, 64, "{}"): (379.3051, 126.4602, 17313163, 776965920),
    ("fvpaspp", 1, 8, "{}"): (5.9712, 1.9935, 272699, 94176512),
    ("resunet", 1, 16, "{}"): (13.9398, 4.6536, 493697, 122627648),
    ("resunet", 1, 32, "{}"): (55.6626, 18.5682, 1970433, 246697088),
    ("resunet", 1, 64, "{}"): (222.4575, 74.1805, 7873025, 500734208),
    ("unet", 1, 16, "{}"): (13.7846, 4.6012, 482449, 112642240),
    ("unet", 1, 32, "{}"): (55.0502, 18.3627, 1926433, 226945408),
    ("unet", 1, 64, "{}"): (220.0248, 73.3668, 7699009, 461320960),
    ("unet-efficientnet-b0", 3, None, "{'dropout': 0.3}"): (17.7186, 5.9156, 5839309, 193627024),
    ("unet-efficientnet-b0", 3, None, "{}"): (17.7186, 5.9156, 5839309, 193626960),
    ("unet-efficientnet-b0", 4, None, "{'dropout': 0.3}"): (17.7375, 5.9251, 5839597, 193891796),
    ("unet-efficientnet-b3", 3, None, "{}"): (22.8668, 7.6341, 12566137, 319390952),
    ("unet-resnet34", 3, None, "{'classes': 2}"): (46.6323, 15.6469, 24436514, 178429184),
}


def count_costs(model: str, in_channels: int, size: int, width: int | None, kw: str) -> dict:
    """Training and forward GFLOP per image, parameters, and saved-activation bytes per image.

    Counted on the ``meta`` device (shapes only) for a model in training mode.
    """
    kwargs = dict(eval(kw))  # noqa: S307 - our own repr of a dict of literals
    if width is not None:
        kwargs["base_width"] = width
    net = build_model(model, in_channels=in_channels, **kwargs).to("meta").train()
    x = torch.zeros(2, in_channels, size, size, device="meta")  # 2: batch norm needs > 1
    fwd, train = count_model_flops(net, x, backward=False), count_model_flops(net, x, backward=True)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return {
        "forward_gflop": fwd / 2e9,
        "train_gflop": train / 2e9,
        "params": sum(p.numel() for p in net.parameters()),
        "saved_bytes": saved[0] / 2,
    }


@functools.lru_cache(maxsize=64)
def model_costs(model: str, in_channels: int, size: int, width: int | None, kw: str) -> dict:
    """``count_costs``, from ``COUNTED_256`` scaled by the pixel count where it has the model
    (a convolution's FLOPs and activations are proportional to the pixels), else counted."""
    found = COUNTED_256.get((model, in_channels, width, kw))
    if found is None:
        return count_costs(model, in_channels, size, width, kw)
    scale = (size / 256) ** 2
    train, fwd, params, saved = found
    return {
        "train_gflop": train * scale,
        "forward_gflop": fwd * scale,
        "params": params,
        "saved_bytes": saved * scale,
    }


def _count(profile: Profile, subset: str, split: str, covid_only: bool) -> int:
    counts = phantom_counts(profile.phantom_n)[split] if profile.phantom else None
    counts = counts or REAL_COUNTS[subset][split]
    return counts["COVID-19"] if covid_only else sum(counts.values())


def _key(model: str, t: Training, s: Any, width: int | None, kwargs: dict) -> tuple:
    return (model, t.in_channels or _channels(s.inputs), width, repr(kwargs))


def plan_training(profile: Profile, t: Training) -> dict[str, Any]:
    """Images, epochs, size, FLOPs and memory of one ``Training`` in a (lab-bound) profile."""
    s = report_settings(t.report)
    r = profile.recipe(t.report, epochs=t.epochs)  # epochs=None: the report's
    epochs, width, batch, size = r.epochs, r.base_width, r.batch_size, r.size
    limit = profile.images(subset="lung") if t.subset == "lung" else r.train_images
    val_limit = profile.images(subset=t.subset)
    n_train = _count(profile, t.subset, "Train", s.covid_only)
    n_val = _count(profile, t.subset, "Val", s.covid_only)
    n_train = n_train if limit is None else min(n_train, limit)
    n_val = n_val if val_limit is None else min(n_val, val_limit)
    model = t.model or s.model
    kwargs = {} if t.model else {k: v for k, v in s.kwargs.items() if k != "infection_kwargs"}
    costs = model_costs(model, t.in_channels or _channels(s.inputs), size, width, repr(kwargs))
    gflop = t.models * epochs * (n_train * costs["train_gflop"] + n_val * costs["forward_gflop"])
    planes = 2 if t.subset == "lung" else 3  # image + lung mask (+ infection mask), uint8
    return {
        "report": t.report, "model": model, "models": t.models, "train_images": n_train,
        "val_images": n_val, "epochs": epochs, "size": size, "batch": batch, "gflop": gflop,
        "params": costs["params"], "saved_bytes_per_image": costs["saved_bytes"],
        "cache_bytes": (n_train + n_val) * size * size * planes,
        "counted": "table" if _key(model, t, s, width, kwargs) in COUNTED_256 else "now",
        "unit": "img",
    }  # fmt: skip


def _rate(device: str) -> tuple[tuple[float, float, float], str]:
    """(low, central, high) effective GFLOP/s of ``device`` and how they were obtained."""
    if device == "cpu":
        return CPU_GFLOPS, "CPU rate measured on a 2-core machine"
    label, _ = GPUS[device]
    peak = next(t for _, name, t in PEAK_TFLOPS if name == label)
    effs = EFFICIENCY.get(label, (peak, DEFAULT_EFFICIENCY))[1]
    rates = tuple(peak * 1e3 * e for e in effs)
    return rates, f"{peak:g} TFLOP/s peak x {effs[0]:.0%}-{effs[2]:.0%} (assumed)"  # type: ignore[return-value]


def plan_lab(profile: Profile, lab: str, device: str, memory_gb: float | None = None) -> dict:
    """One lab's plan on ``device`` (one of ``DEVICES``): trainings, FLOPs, minutes, memory.

    Raises:
        ValueError: ``device`` or ``lab`` is unknown.
    """
    if device not in DEVICES:
        raise ValueError(f"--gpu: unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if lab not in LABS:
        raise ValueError(f"lab {lab!r} has no entry in labkit.runs.LABS")
    p = profile.for_lab(lab)
    rows = plan_ct(p) if lab == CT_LAB else [plan_training(p, t) for t in lab_trainings(lab)]
    (low, mid, high), how = _rate(device)
    gflop = sum(r["gflop"] for r in rows)
    gpu = memory_gb if memory_gb is not None else GPUS.get(device, (None, None))[1]
    amp = 0.5 if device != "cpu" else 1.0  # fp16 AMP roughly halves the saved activations
    peak_gb, fits = 0.0, []
    for r in rows:
        model_gb = (16 * r["params"] + amp * r["batch"] * r["saved_bytes_per_image"]) / 1e9
        ok = gpu is not None and fits_on_gpu(r["cache_bytes"], (gpu - model_gb) * 1e9)
        fits.append(ok)
        peak_gb = max(peak_gb, model_gb + (r["cache_bytes"] / 1e9 if ok else 0.0))
    return {
        "lab": lab, "profile": profile.name, "device": device, "trainings": rows,
        "gflop": gflop, "minutes": gflop / mid / 60, "range": (gflop / high / 60, gflop / low / 60),
        "rate": how, "peak_gb": peak_gb, "cache_fits": all(fits) if rows else None,
        "cache_gb": max((r["cache_bytes"] for r in rows), default=0) / 1e9,
    }  # fmt: skip


def _minutes(m: float) -> str:
    return f"about {m:.0f} min" if m >= 0.5 else "under 1 min"


def _flop(gflop: float) -> str:
    for unit, scale in (("PFLOP", 1e6), ("TFLOP", 1e3)):
        if gflop >= scale:
            return f"{gflop / scale:.1f} {unit}"
    return f"{gflop:.0f} GFLOP"


# Above this many estimated minutes a CPU plan gives advice instead of a time: two hours is
# already more than a practical session.
CPU_PRACTICAL_MIN = 120


def describe_plan(plan: dict) -> str:
    """One line per lab, starting with the lab number."""
    if not plan["trainings"]:
        return f"{plan['lab']}  no training"
    work = " + ".join(
        f"{r['models']}x {r['model']} {r['train_images']} {r['unit']} x {r['epochs']} ep "
        f"@{r['size']} px"
        for r in plan["trainings"]
    )
    low, high = plan["range"]
    if plan["device"] == "cpu":
        memory = f"memory ~{plan['peak_gb']:.1f} GB"
    else:
        where = "fits in GPU memory" if plan["cache_fits"] else "stays in pinned CPU memory"
        memory = (
            f"peak GPU memory ~{plan['peak_gb']:.1f} GB; cached split "
            f"({plan['cache_gb']:.2f} GB) {where}"
        )
    if plan["device"] == "cpu" and plan["minutes"] > CPU_PRACTICAL_MIN:
        # minutes by the thousand, over a range this wide, help nobody: say what to do
        time_text = (
            f"hours to days on a CPU (an estimate: {low / 60:.0f}-{high / 60:.0f} h): "
            "run this profile on a GPU (--gpu t4 estimates a free Colab GPU); on a CPU use "
            "--profile smoke"
        )
    else:
        time_text = f"{_minutes(plan['minutes'])} ({low:.0f}-{high:.0f} min) on {plan['device']}"
    return f"{plan['lab']}  {work} | {_flop(plan['gflop'])} | {time_text} | {memory}"


def lab_estimate(profile: Profile, device: torch.device | str) -> str:
    """``about 6 min on this Tesla T4 (an estimate ...)`` for the bound lab on ``device``."""
    device = torch.device(device)
    name, memory = "this CPU", None
    key = "cpu"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory / 1e9
        found = peak_for_name(name)
        key = next((k for k, (label, _) in GPUS.items() if found and found[1] == label), "")
        if not key:
            return f"no time estimate for {name} (labkit knows no peak rate for this GPU)"
        name = f"this {name}"
    plan = plan_lab(profile, profile.lab, key, memory)
    if not plan["trainings"]:
        return "this lab trains no model"
    low, high = plan["range"]
    return (
        f"training in this lab: {_minutes(plan['minutes'])} on {name} (an estimate: "
        f"{low:.0f}-{high:.0f} min from counted FLOPs and {plan['rate']}; labkit course plan)"
    )
