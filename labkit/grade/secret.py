"""The grading run's secret: where the hidden tests' random inputs come from, and the key
that signs a shard's record.

A secret is 32 random bytes, drawn afresh for each run unless the instructor gives a secret
file (``labkit grade secret FILE`` makes one; every shard of a class gets the same file).
It never enters a sandbox: each exercise of each student is tested with its own seed,
``derive_seed(secret, lab, exercise, student)``, so what one process could read (its own
inputs) tells nothing about anyone else's, nor about another run's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

SECRET_BYTES = 32
MIN_BYTES = 16  # 128 bits: a secret nobody can guess or try out
_HEX = re.compile(r"^[0-9a-f]+$")


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def check_secret(secret: bytes, what: str = "the secret") -> bytes:
    """``secret`` if it is long and varied enough to be unguessable.

    Raises:
        ValueError: fewer than 128 bits, or too few distinct bytes to be random (``1111...``).
    """
    if not isinstance(secret, bytes) or len(secret) < MIN_BYTES:
        raise ValueError(
            f"{what} must be at least {MIN_BYTES * 8} random bits; make one with "
            "`labkit grade secret FILE`"
        )
    if len(set(secret)) < len(secret) // 4:
        raise ValueError(
            f"{what} does not look random (too few distinct values); make one with "
            "`labkit grade secret FILE`"
        )
    return secret


def write_secret_file(path: str | Path) -> Path:
    """Write a new secret to ``path`` (hex, readable by its owner only); never overwrites.

    Raises:
        ValueError: ``path`` exists already.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ValueError(f"{path} exists already; a secret file is made once per class") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new_secret().hex() + "\n")
    return path


def read_secret_file(path: str | Path) -> bytes:
    """The secret in ``path`` (hex digits, as ``write_secret_file`` writes them).

    Raises:
        ValueError: unreadable, not hex, or too weak (naming the file and what was expected).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip().lower()
    except OSError as err:
        raise ValueError(f"--secret {path}: cannot read it ({err.strerror or err})") from None
    if len(text) % 2 or not _HEX.match(text or "-"):
        raise ValueError(
            f"--secret {path}: expected hex digits as written by `labkit grade secret FILE`"
        )
    return check_secret(bytes.fromhex(text), f"--secret {path}")


def derive_seed(secret: bytes, *parts: str) -> int:
    """A 62-bit seed for ``parts`` (lab, exercise, student): known only to whoever has the secret."""
    message = "\0".join(parts).encode("utf-8", "surrogateescape")
    digest = hmac.new(secret, b"seed\0" + message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def sign(secret: bytes, data: bytes) -> str:
    """A MAC of ``data`` (a shard's record) under the run's secret."""
    return hmac.new(secret, b"shard\0" + data, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, data: bytes, mac: str) -> bool:
    return hmac.compare_digest(sign(secret, data), str(mac))
