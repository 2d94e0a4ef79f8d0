"""labkit bench [--quick] [--device cpu|cuda] [--out FILE.json]

Measures how fast this machine loads data, trains and predicts, prints a table and can
write every figure as JSON. The default sizes are the reports' (256 px, batch 32): on a
CPU that takes hours, so use --quick (under a minute) or --size/--batch-size/--steps.

examples:
  labkit bench --quick
  labkit bench --labs 02 03 --seeds 0 1 2     (each lab's smoke training, timed and scored)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from labkit.commands.args import check_data_path, non_negative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    usage, _, description = __doc__.partition("\n\n")
    p = sub.add_parser(
        "bench", help="measure data-path, training and inference throughput", usage=usage,
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument(
        "--quick", action="store_true", help="small sizes and counts, 1 thread (< 1 min on CPU)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--data", default="phantom", help="dataset root or 'phantom' (default)")
    p.add_argument("--size", type=positive_int, default=None, help="image side in pixels")
    p.add_argument("--batch-size", type=positive_int, default=None, help="images per step")
    p.add_argument("--steps", type=positive_int, default=None, help="timed steps per figure")
    p.add_argument(
        "--warmup", type=non_negative_int, default=None, help="untimed steps before each figure"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default: all; 1 with --quick)",
    )
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--models", nargs="+", default=None, help="unet and/or unet-resnet34")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--labs",
        nargs="*",
        default=None,
        help="instead: time every lab's smoke training and score it; lab numbers, none = all",
    )
    p.add_argument(
        "--seeds",
        type=non_negative_int,
        nargs="+",
        default=[0],
        help="with --labs: seeds (default: 0)",
    )
    p.add_argument("--profile", default="smoke", help="with --labs: run profile (smoke)")
    p.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace):
    from labkit.bench import BenchSettings

    base = BenchSettings.quick_settings() if args.quick else BenchSettings()
    return base.override(
        size=args.size,
        batch_size=args.batch_size,
        steps=args.steps,
        infer_steps=args.steps,
        warmup=args.warmup,
        compile=False if args.no_compile else None,
        models=tuple(args.models) if args.models else None,
        threads=args.threads,
    )


def run(args: argparse.Namespace) -> int:
    from labkit.bench import run_bench

    if args.labs is not None:
        return run_labs(args)
    if args.device not in (None, "auto", "cpu", "cuda") and not str(args.device).startswith(
        "cuda:"
    ):
        raise ValueError(f"--device: expected cpu or cuda, got {args.device!r}")
    if args.out is not None and args.out.suffix != ".json":
        raise ValueError(f"--out: expected a .json file name, got {str(args.out)!r}")
    check_data_path(args.data)
    settings = settings_from_args(args)
    command = "labkit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_bench(settings, args.device, args.data, not args.quiet, command)
    print(format_report(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {args.out}")
    return 0


def run_labs(args: argparse.Namespace) -> int:
    """``labkit bench --labs``: every lab's smoke training, timed, with its test Dice."""
    from labkit.bench.labs import bench_labs, format_labs

    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    results = bench_labs(args.labs or None, tuple(args.seeds), args.profile, args.threads, log)
    print(format_labs(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {args.out}")
    return 0


# ---- the table ----------------------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _figure(record: dict[str, Any] | None) -> str:
    """images/s of a measurement, or its status (``n/a: ...``, ``same as fp32 ...``)."""
    if not record:
        return "-"
    if "images_per_s" in record:
        return _num(record["images_per_s"])
    return str(record.get("status", "-"))


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _gpu(record: dict[str, Any] | None, name: str, naive: dict[str, Any] | None = None) -> str:
    """A GPU data-path figure with its ratio to the naive one and its syncs per batch."""
    if not record or "images_per_s" not in record:
        return _figure(record)
    text = f"{_figure(record):>10}"
    if naive:
        text += f"   {name} = {_ratio(record['images_per_s'] / naive['images_per_s'])}"
    syncs = record.get("syncs_per_batch")
    return text + ("" if syncs is None else f", {syncs} CUDA syncs per batch")


def _rounds(d: dict[str, Any]) -> str:
    """Each round's b/a, then the median and the spread (lowest to highest round)."""
    ratios = [rd["ratio_b_over_a"] for rd in d.get("rounds", [])]
    if not ratios:
        return "n/a"
    lo, hi = min(ratios), max(ratios)
    return (f"{', '.join(_ratio(r) for r in ratios)}; median {_ratio(d['ratio_b_over_a'])}, "
            f"spread {lo:.2f}-{hi:.2f}x")  # fmt: skip


def _kept(d: dict[str, Any]) -> str:
    """Whether the data path ran with freed memory reused (labkit.device.keep_freed_memory)."""
    value = d.get("keep_freed_memory")
    return (
        "not recorded" if value is None else ("yes" if value else "no (not glibc, or MALLOC_* set)")
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_report(r: dict[str, Any]) -> str:
    """The results of ``labkit.bench.run_bench`` as a plain-text table."""
    m, s, d = r["machine"], r["settings"], r["data_path"]
    gpu = f", {m['gpu']} (capability {m.get('capability')})" if m.get("gpu") else ""
    loads = [f"{v[0]:.1f}" for v in r["load_average"].values() if v]
    ratio = d.get("ratio_b_over_a")
    verdict = "not measured" if ratio is None else ("met" if ratio >= 3 else "MISSED")
    a, b, c = d["naive"], d["labkit_cpu"], d["labkit_gpu"]
    lines = [
        f"labkit bench  {m['date']}  device {m['device']}{gpu}",
        f"  torch {m['torch']}, torchvision {m['torchvision']}, smp "
        f"{m['segmentation-models-pytorch']}, python {m['python']}",
        f"  CPU: {m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads; "
        f"1-min load average {' -> '.join(loads) or 'n/a'}",
        f"  command: {r.get('command')}",
        "",
        f"1. Data path, {d['size']} px, batch {d['batch']}, report 003 augmentation "
        f"(images/s; median of {len(d.get('rounds', [])) or 1} interleaved rounds of "
        f"{d['batches']} timed batches after {d['warmup']} warm-up)",
        f"  {'(a) naive: PIL per item, per-sample v2 augmentation, DataLoader':<64}"
        f"{_figure(a):>10}   {a['workers']} workers",
        f"  {'(b) labkit: cached uint8, batched augmentation, BatchLoader on cpu':<64}"
        f"{_figure(b):>10}   b/a = {_ratio(ratio)} (target >= 3x: {verdict})",
        f"  b/a per round: {_rounds(d)}",
        f"  {'(c) labkit: the same, resident on the GPU':<64}{_gpu(c, 'c/a', a)}",
        f"  {'(d) labkit: split in CPU memory, pinned async copies to the GPU':<64}"
        f"{_gpu(d.get('labkit_gpu_pinned'), 'd/a', a)}",
        f"  labkit decodes each split once (load_split, uncached): {d['decode']['images']} "
        f"images in {d['decode']['seconds']:.2f} s; then every epoch reads memory",
        f"  freed memory reused (keep_freed_memory), (a) and (b) alike: {_kept(d)}",
        "",
        f"2. Training step, {s['size']} px, batch {s['batch_size']} (images/s; {s['steps']} "
        f"timed steps after {s['warmup']} warm-up; labkit.train's step; TFLOP/s = model-only "
        "x counted training FLOPs)",
        f"  {'model':<14}{'variant':<46}{'model-only':>11}{'end-to-end':>11}{'e2e/model':>10}"
        f"{'TFLOP/s':>9}{'of peak':>9}",
    ]
    for name, rows in r["training"].items():
        for row in rows:
            if "model_only" not in row:
                lines.append(f"  {name:<14}{row['label']:<46}  {row['status']}")
                continue
            mo, e2e = row["model_only"], row["end_to_end"]
            lines.append(
                f"  {name:<14}{row['label']:<46}{_figure(mo):>11}{_figure(e2e):>11}"
                f"{_ratio(row['end_to_end_over_model_only']):>10}"
                f"{mo.get('achieved_tflops', 0):>9.3f}{_pct(mo.get('fraction_of_peak')):>9}"
            )
    lines += [
        "",
        f"3. Inference, {s['size']} px, batch {s['batch_size']} (images/s; {s['infer_steps']} "
        "timed batches)",
    ]
    for name, rows in r["inference"].items():
        for row in rows:
            if "images_per_s" not in row:
                lines.append(f"  {name:<14}{row['label']:<46}  {row.get('status')}")
                continue
            mem = row.get("peak_memory_mb")
            mem_s = "n/a" if mem is None else f"{mem:,.0f} MB"
            lines.append(
                f"  {name:<14}{row['label']:<46}{_figure(row):>11}  peak memory {mem_s:>9}"
                f"  {row.get('achieved_tflops', 0):.3f} TFLOP/s ({_pct(row.get('fraction_of_peak'))} of peak)"
            )
    measures = {row["memory_measure"] for rows in r["inference"].values() for row in rows
                if "memory_measure" in row}  # fmt: skip
    lines += [f"  memory: {m}" for m in sorted(measures)]
    lines += ["", "4. FLOPs per image (FlopCounterMode: convolutions and matmuls only)"]
    for name, sizes in r["flops"].items():
        if name == "counter":
            continue
        for size, f in sizes.items():
            lines.append(
                f"  {name:<14}{size:>4} px: forward {f['forward_gflop_per_image']:8.2f} GFLOP, "
                f"training (forward + backward) {f['train_gflop_per_image']:8.2f} GFLOP "
                f"({f['train_over_forward']:.2f}x)"
            )
    peak = r["peak"]
    lines.append(
        f"  device peak: {peak['gpu']} {peak['tflops']} TFLOP/s dense 16-bit"
        if peak["tflops"]
        else f"  device peak: {peak['note']} (fraction of peak n/a)"
    )
    est = r["epoch_estimate"]
    lines += ["", f"5. Epoch over {est['images']:,} images at 256 px: ESTIMATE ({est['method']})"]
    for name, e in est["models"].items():
        for gpu, g in e["estimates"].items():
            lo, hi = g["seconds"]["range"]
            eff = g["efficiency"]
            lines.append(
                f"  {name:<14}{gpu:<9} ~{g['seconds']['central']:6.1f} s "
                f"(range {lo:.1f}-{hi:.1f} s at {eff['high']:.0%}-{eff['low']:.0%} of "
                f"{g['peak_tflops']:.0f} TFLOP/s; central {eff['central']:.0%})"
            )
        if "measured_this_gpu_seconds" in e:
            lines.append(f"  {name:<14}this GPU, from the measured end-to-end figure: "
                         f"{e['measured_this_gpu_seconds']:.1f} s")  # fmt: skip
    lines.append(f"\ntotal {r['total_seconds']:.1f} s")
    lines += [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)
