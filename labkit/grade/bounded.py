"""JSON from untrusted bytes, parsed only within limits of size, objects and depth.

A byte cap alone is not enough: 200 KB of ``[[],[],...]`` is 25 million lists, several GB
once parsed. ``loads_bounded`` counts, before parsing, every character outside strings that
can open or add a JSON value (``[``, ``{``, ``,``, ``:``): their number bounds the objects
``json.loads`` can make, and their nesting bounds its depth. Strings are skipped in one
linear pass (split at quotes, a quote after an odd run of backslashes is escaped), so text
full of brackets counts for nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class TooLarge(ValueError):
    """The JSON is over one of the limits (the message says which)."""


def outside_strings(text: str) -> str:
    """``text`` without the contents of its JSON strings (linear in its length)."""
    parts = text.split('"')
    kept, inside = [parts[0]], False
    for previous, part in zip(parts, parts[1:]):
        escaped = inside and (len(previous) - len(previous.rstrip("\\"))) % 2 == 1
        if not escaped:
            inside = not inside
        if not inside:
            kept.append(part)
    return "".join(kept)


def check_shape(text: str, max_items: int, max_depth: int) -> None:
    """Raise ``TooLarge`` unless ``text`` could make at most ``max_items`` values nested at
    most ``max_depth`` deep (counted conservatively, strings included)."""
    text = outside_strings(text)
    items = text.count("[") + text.count("{") + text.count(",") + text.count(":")
    if items > max_items:
        raise TooLarge(f"it holds more than {max_items:,} JSON values")
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", text):  # at most 2 * max_items brackets left to scan
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > max_depth:
                    raise TooLarge(f"its JSON is nested more than {max_depth} levels deep")
        elif ch in "]}":
            depth -= 1


def loads_bounded(
    data: bytes | str, *, max_bytes: int, max_items: int = 200_000, max_depth: int = 64
) -> Any:
    """``json.loads`` of ``data`` within limits.

    Raises:
        TooLarge: over ``max_bytes``, ``max_items`` values or ``max_depth`` levels.
        ValueError: not UTF-8 or not JSON.
    """
    if len(data) > max_bytes:
        raise TooLarge(f"it is larger than {max_bytes:,} bytes")
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    check_shape(text, max_items, max_depth)
    return json.loads(text)
