"""``labkit info``: versions, device, AMP, Colab, data location, active profile."""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="print versions, device, AMP, data location and profile",
        description="What labkit will use here: package versions, the device and its mixed "
        "precision, whether this is Colab, where the data is, and the run profile. Paste it "
        "into a question or bug report.",
        epilog="example: labkit info --json",
    )
    p.add_argument(
        "--profile", default=None, help="run profile (default: $LABKIT_PROFILE or smoke)"
    )
    p.add_argument("--device", default=None, help="device override (cuda, mps, cpu, auto)")
    p.add_argument("--data", default=None, help="dataset root, or 'phantom'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect(
    profile: str | None = None, device: str | None = None, data: str | None = None
) -> dict[str, Any]:
    """Everything ``labkit info`` reports, as a dict."""
    from labkit import __version__
    from labkit.data.download import kaggle_credentials
    from labkit.data.locate import describe_data_location
    from labkit.device import device_facts, on_colab
    from labkit.runs import get_profile

    prof = get_profile(profile)
    facts: dict[str, Any] = {
        "labkit": __version__,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "segmentation-models-pytorch": _version("segmentation-models-pytorch"),
        "timm": _version("timm"),
        # Colab preinstalls these; labkit must work with its versions (README, "On Colab").
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "ipywidgets": _version("ipywidgets"),
        "kagglehub": _version("kagglehub"),
    }
    facts.update(device_facts(device))
    facts["colab"] = on_colab()
    facts["data"] = describe_data_location(data, prof.phantom_n)
    facts["kaggle credentials"] = kaggle_credentials() or "none found"
    facts["profile"] = f"{prof.name} ({prof.description})"
    return facts


def run(args: argparse.Namespace) -> int:
    facts = collect(args.profile, args.device, args.data)
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
    return 0
