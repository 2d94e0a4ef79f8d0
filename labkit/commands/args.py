"""What the commands share. Typed ``argparse`` arguments: a bad value is refused while the
command line is read, as one line naming the option and what was expected
(``labkit train: error: argument --epochs: expected a whole number of 1 or more, got '0'``),
before any work starts and never replaced by a default. ``CommandError``: a failure said as
one line, without a traceback (``labkit.cli`` prints it).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


class CommandError(Exception):
    """An error to show the user as one clear line, without a traceback."""


def _number(kind: type, low: float, inclusive: bool, words: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        if value < low or (not inclusive and value == low):
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value

    parse.__name__ = words  # argparse names the type in some messages
    return parse


positive_int = _number(int, 1, True, "a whole number of 1 or more")
non_negative_int = _number(int, 0, True, "a whole number of 0 or more")
positive_float = _number(float, 0.0, False, "a number above 0")


def fraction(text: str) -> float:
    """A number from 0 to 1 (a probability threshold)."""
    value = _number(float, 0.0, True, "a number from 0 to 1")(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def lab_list(text: str) -> list[str]:
    """``"2,3"`` or ``"02, 03"`` -> ``["02", "03"]``: two-digit lab numbers."""
    labs = [part.strip() for part in text.split(",") if part.strip()]
    if not labs or not all(part.isdigit() and len(part) <= 2 for part in labs):
        raise argparse.ArgumentTypeError(
            f"expected lab numbers separated by commas, e.g. 02,03; got {text!r}"
        )
    return [part.zfill(2) for part in labs]


def course_root() -> Path:
    """The nearest folder, from here upwards, that holds ``solutions/`` (a course's root), so
    ``build``, ``course run`` and ``course plan`` work from any folder inside a course; the
    current folder when none does. Relative to here ("." or "../..") so messages stay short."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir():
            return Path(os.path.relpath(folder))
    return Path(".")


def data_root(value: str | None, phantom_n: int, progress: bool = True) -> Path:
    """``--data``'s dataset root (``labkit.data.resolve_data``: the phantom is made if needed).

    Raises:
        CommandError: the folder holds no COVID-QU-Ex data, as one line naming ``--data``
            (or ``$LABKIT_DATA`` when the path came from there) and what was expected.
    """
    from labkit.data.locate import resolve_data  # here: `labkit --help` stays light

    try:
        return resolve_data(value, phantom_n, progress=progress)
    except FileNotFoundError as err:
        where = "--data: " if value is not None else ""  # $LABKIT_DATA's message names it
        raise CommandError(where + " ".join(str(err).split())) from None


def check_data_path(value: str | None) -> None:
    """Refuse a ``--data`` path that holds no COVID-QU-Ex data before any work starts (for
    commands that hand ``--data`` on to notebooks); ``None`` and ``phantom`` pass.

    Raises:
        CommandError: as ``data_root``.
    """
    from labkit.data.locate import PHANTOM, locate_data

    if value is not None and locate_data(value)[0] != PHANTOM:
        data_root(value, phantom_n=1, progress=False)  # a path: checked, nothing generated
