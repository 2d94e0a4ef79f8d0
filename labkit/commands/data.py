"""``labkit data ...``: make the phantom dataset, check a tree, download COVID-QU-Ex, count images."""

from __future__ import annotations

import argparse
from pathlib import Path

from labkit.commands.args import CommandError, non_negative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="phantom dataset, checks, download and counts",
        description="Make a synthetic (phantom) dataset, check a dataset for problems, "
        "download COVID-QU-Ex from Kaggle, or count its images.",
        epilog="examples:\n  labkit data check /path/to/covidqu\n  labkit data phantom data/phantom",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_sub = p.add_subparsers(dest="data_command", metavar="<action>")
    p.set_defaults(handler=lambda args: p.print_help() or 0)

    ph = data_sub.add_parser(
        "phantom",
        help="write a synthetic dataset in the COVID-QU-Ex layout",
        description="Write synthetic chest X-rays with lung and infection masks, in the "
        "folders of COVID-QU-Ex, so every lab runs without the real data.",
        epilog="example: labkit data phantom data/phantom --n 240 --size 256",
    )
    ph.add_argument("out", type=Path, help="output folder")
    ph.add_argument("--n", type=positive_int, default=240, help="images per subset (default 240)")
    ph.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    ph.add_argument(
        "--size", type=positive_int, default=256, help="image side in pixels (default 256)"
    )
    ph.add_argument("--overwrite", action="store_true", help="replace an existing dataset in OUT")
    ph.add_argument("--quiet", action="store_true", help="no progress bar")
    ph.add_argument(
        "--ct", action="store_true", help="CT volumes in the Kaggle CT layout instead (lab 07)"
    )
    ph.add_argument(
        "--volumes", type=positive_int, default=20, help="with --ct: subjects (default 20)"
    )
    ph.set_defaults(handler=run_phantom)

    ck = data_sub.add_parser(
        "check",
        help="report every problem in a dataset tree (exit 0 if usable)",
        description="Read a dataset tree and list every problem: missing folders, unpaired "
        "images and masks, unreadable or wrongly sized PNGs, masks that are not 0/255. "
        "Exit 0 when the set is usable.",
        epilog="example: labkit data check /path/to/covidqu --subset infection",
    )
    ck.add_argument(
        "root",
        help="dataset root (any level: both subsets, a subset, its inner folder), or a CT tree "
        "(metadata.csv / ct_scans/: lab 07), detected by its layout",
    )
    ck.add_argument(
        "--subset", choices=("infection", "lung"), default=None, help="check one subset only"
    )
    ck.add_argument("--no-decode", action="store_true", help="check the layout only, not the PNGs")
    ck.add_argument("--all", action="store_true", help="list every problem (default: 30 per level)")
    ck.add_argument("--quiet", action="store_true", help="no progress bar")
    ck.set_defaults(handler=run_check)

    dl = data_sub.add_parser(
        "download",
        help="download COVID-QU-Ex from Kaggle with kagglehub",
        description="Download COVID-QU-Ex (or, with --ct, the COVID-19 CT scans) from Kaggle. "
        "Needs Kaggle credentials: KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY (on "
        "Colab as secrets), or ~/.kaggle/kaggle.json.",
        epilog="example: labkit data download --dest data/",
    )
    dl.add_argument(
        "--dest", type=Path, default=None, help="folder to download into (default: kagglehub cache)"
    )
    dl.add_argument("--ct", action="store_true", help="the COVID-19 CT scans set (lab 07) instead")
    dl.set_defaults(handler=run_download)

    inf = data_sub.add_parser(
        "info",
        help="print image counts per split and class",
        description="Count the images of a dataset per subset, split and class.",
        epilog="example: labkit data info phantom",
    )
    inf.add_argument("root", help="dataset root, or 'phantom'")
    inf.add_argument("--profile", default=None, help="run profile sizing the phantom data")
    inf.set_defaults(handler=run_info)


def run_phantom(args: argparse.Namespace) -> int:
    from labkit.data.phantom import MANIFEST, make_phantom

    if getattr(args, "ct", False):
        return run_ct_phantom(args)
    manifest = Path(args.out).expanduser() / MANIFEST
    before = manifest.stat().st_mtime_ns if manifest.is_file() else None
    out = make_phantom(
        args.out,
        n=args.n,
        seed=args.seed,
        size=args.size,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    if before is not None and manifest.stat().st_mtime_ns == before:  # make_phantom did nothing
        print(
            f"{out} already holds this phantom dataset (same --n, --seed, --size, every image "
            "there): kept, nothing written. If a file there is damaged, `labkit data check "
            f"{out}` finds it and --overwrite writes the set again"
        )
    else:
        print(f"phantom dataset written to {out}")
    _print_counts(out)
    print(f"use it with: export LABKIT_DATA={out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from labkit.data.cache import rebuild_command
    from labkit.data.check import check_dataset
    from labkit.data.explore import counts_table

    if is_ct_path(args.root):
        return run_ct_check(args)
    subsets = (args.subset,) if args.subset else None
    report = check_dataset(
        args.root, subsets=subsets, decode=not args.no_decode, progress=not args.quiet
    )
    limit = None if args.all else 30
    for level, problems in (("error", report.errors), ("warning", report.warnings)):
        for p in problems[:limit]:
            print(p)
        if limit is not None and len(problems) > limit:
            print(f"... and {len(problems) - limit} more {level}s (use --all to list them)")
    for subset, counts in report.counts.items():
        print()
        print(counts_table(counts, title=f"{subset} subset (images with all their masks):"))
    print()
    verdict = "usable" if report.ok else "NOT usable"
    print(
        f"{report.root}: {verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    if not report.ok and (command := rebuild_command(report.root)):
        print(f"this is labkit's generated phantom data: rebuild it with `{command}`")
    return 0 if report.ok else 1


def run_download(args: argparse.Namespace) -> int:
    from labkit.data.download import DownloadError, download_covidqu
    from labkit.data.locate import resolve_data

    if getattr(args, "ct", False):
        return run_ct_download(args)
    try:
        path = download_covidqu(args.dest)
    except DownloadError as err:
        raise CommandError(str(err)) from err
    root = resolve_data(path)
    print(f"COVID-QU-Ex downloaded to {root}")
    _print_counts(root)
    print(f"use it with: export LABKIT_DATA={root}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from labkit.data.locate import resolve_data
    from labkit.runs import get_profile

    root = resolve_data(args.root, get_profile(args.profile).phantom_n)
    print(f"dataset root: {root}")
    _print_counts(root)
    return 0


def _print_counts(root: Path) -> None:
    from labkit.data.explore import count_images, counts_table
    from labkit.data.layout import SUBSETS, present_subsets

    found = present_subsets(root)
    for subset in SUBSETS:
        if subset not in found:
            print(f"{subset} subset: not present")
            continue
        print(counts_table(count_images(root, subset), title=f"{subset} subset (image files):"))


# ---------------------------------------------------------------------------- CT (lab 07)
def is_ct_path(root: str | Path) -> bool:
    """A CT tree at ``root``, or below it when ``root`` holds no X-ray subset."""
    from labkit.ct.layout import find_ct_root, is_ct_tree
    from labkit.data.layout import present_subsets

    if not Path(root).is_dir():
        return False
    if is_ct_tree(root):
        return True
    if present_subsets(root):
        return False
    try:
        find_ct_root(root)
    except FileNotFoundError:
        return False
    return True


def run_ct_check(args: argparse.Namespace) -> int:
    from labkit.ct.validate import check_ct

    report = check_ct(args.root, progress=not args.quiet)
    limit = None if args.all else 30
    for level, problems in (("error", report.errors), ("warning", report.warnings)):
        for p in problems[:limit]:
            print(p)
        if limit is not None and len(problems) > limit:
            print(f"... and {len(problems) - limit} more {level}s (use --all to list them)")
    print()
    print(f"CT tree: {len(report.rows)} readable volume(s)")
    print(report.table())
    print()
    verdict = "usable" if report.ok else "NOT usable"
    print(
        f"{report.root}: {verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    return 0 if report.ok else 1


def run_ct_phantom(args: argparse.Namespace) -> int:
    from labkit.ct.phantom import make_ct_phantom

    if args.volumes < 3:
        raise ValueError(f"--volumes: expected at least 3 (train/val/test), got {args.volumes}")
    out = make_ct_phantom(
        args.out, n=args.volumes, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet
    )
    print(f"phantom CT set ({args.volumes} volumes) written to {out}")
    print(f"use it with: export LABKIT_CT_DATA={out}   (or --ct-data {out})")
    return 0


def run_ct_download(args: argparse.Namespace) -> int:
    from labkit.ct.locate import CT_ENV_VAR, download_ct
    from labkit.data.download import DownloadError

    try:
        root = download_ct(args.dest)
    except DownloadError as err:
        raise CommandError(str(err)) from err
    print(f"COVID-19 CT scans downloaded to {root}")
    print(f"check it with: labkit data check {root}")
    print(f"use it with: export {CT_ENV_VAR}={root}")
    return 0
