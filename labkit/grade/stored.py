"""The last grading's results, kept in ``OUT/results.json``, so that a later run does not
undo or repeat its work: ``--manual`` merges hand-given marks into them without running
anything again, and ``--no-run`` keeps each notebook's earlier run (``ok``, ``error``,
``timeout``) instead of writing ``not-run`` over it.

The record holds what must not have changed for a stored result to stand: the lab's
fingerprint (``shards.fingerprint``: lab, labkit version, hidden tests, exercises,
questions), a digest of all the code the workers ran (labkit, the exercise modules, the
hidden tests) and each submission's SHA-256; then the settings the feedback quotes and every
result (without the workers' logs). A result is reused only for a submission whose bytes
are the ones graded; anything else is graded again.

Only records this grader wrote are read: each carries an HMAC under ``--secret`` when one is
given, else under a random key in labkit's cache folder (readable by its user only), so a
``results.json`` made or edited by anyone else (a student's, placed where OUT will be) is
ignored and everything is graded again. ``grade`` also refuses an OUT inside the
submissions folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.data.locate import cache_dir
from labkit.grade.judge import LabSpec
from labkit.grade.shards import checked_result, fingerprint
from labkit.grade.submissions import StudentResult, Submission
from labkit.grade.wire import read_regular_file

RECORD = "results.json"
MAX_RECORD_BYTES = 256 * 2**20
RUN_KEPT = ("ok", "error", "timeout")  # a notebook's run that --no-run never overwrites


@dataclass
class Stored:
    """The results in ``OUT`` still valid for these submissions, by student, and the
    settings (``timeout``, ``reference_seconds``) their feedback quotes."""

    results: dict[str, StudentResult] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def covers(self, subs: list[Submission]) -> bool:
        """Every submission has a stored result (nothing needs grading)."""
        return bool(subs) and all(s.student in self.results for s in subs)


def _key(secret: bytes | None) -> bytes | None:
    """The MAC key: the run's secret, else this user's own random key (made once, 0600);
    ``None`` where no key can be kept (no writable cache folder): nothing is reused then."""
    if secret is not None:
        return secret
    path = cache_dir() / "grade-results.key"
    try:
        if not path.exists():  # written whole, then renamed: never an empty key file
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            os.replace(tmp, path)
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None  # a link, someone else's, or readable by others: not this user's key
        key = bytes.fromhex(path.read_text().strip())
        return key if len(key) >= 32 else None  # an empty or short key protects nothing
    except (OSError, ValueError):
        return None


def _mac(key: bytes, body: bytes) -> str:
    # its own domain: a shard record's MAC (labkit.grade.secret.sign) never passes for this
    return hmac.new(key, b"results\0" + body, hashlib.sha256).hexdigest()


def _digest(sub: Submission) -> str:
    return hashlib.sha256(sub.data if sub.data is not None else sub.problem.encode()).hexdigest()


def _identity(lab: LabSpec) -> dict[str, Any]:
    code = hashlib.sha256()
    for rel in sorted(lab.snapshot):
        code.update(rel.encode() + b"\0" + lab.snapshot[rel] + b"\0")
    return {**fingerprint(lab), "code": code.hexdigest()}


def write_results(
    out: Path,
    lab: LabSpec,
    subs: list[Submission],
    results: list,
    settings: dict,
    secret: bytes | None = None,
) -> None:
    """``OUT/results.json`` for these results (written whole, then renamed into place)."""
    record = {
        **_identity(lab),
        "settings": settings,
        "submissions": {s.student: _digest(s) for s in subs},
        "results": [{**dataclasses.asdict(r), "log": ""} for r in results],
    }
    body = json.dumps(record, sort_keys=True).encode()
    tmp = out / (RECORD + ".tmp")
    key = _key(secret)
    tmp.write_bytes((_mac(key, body) if key else "unsigned").encode() + b"\n" + body)
    os.replace(tmp, out / RECORD)


def read_results(
    out: Path, lab: LabSpec, subs: list[Submission], secret: bytes | None = None
) -> Stored:
    """The stored results that still hold for ``subs``: none when ``OUT`` has no record, or
    one of another lab, labkit, code or hidden tests; per student, only for the same bytes."""
    data, _ = read_regular_file(Path(out) / RECORD, MAX_RECORD_BYTES)
    if data is None:
        return Stored()
    mac, _, body = data.partition(b"\n")
    key = _key(secret)
    if key is None or not hmac.compare_digest(_mac(key, body), mac.decode("ascii", "replace")):
        return Stored()  # not written by this grader (or changed since): grade again
    try:
        record = json.loads(body)
        if any(record.get(key) != value for key, value in _identity(lab).items()):
            return Stored()
        graded = record["submissions"]
        now = {s.student: _digest(s) for s in subs}
        maxima = {s.exercise.id: float(s.exercise.points) for s in lab.specs}
        results = [checked_result(dict(r), maxima, Path(out) / RECORD) for r in record["results"]]
        kept = {r.student: r for r in results if graded.get(r.student) == now.get(r.student)}
        return Stored(kept, dict(record.get("settings") or {}))
    except (ValueError, TypeError, KeyError, AttributeError):  # not in its form: grade again
        return Stored()


def keep_earlier(results: list, stored: Stored, runs: bool) -> None:
    """What a new grading of an unchanged submission must not lose from the stored one: its
    hand-given marks (a new ``--manual`` replaces them afterwards), and when notebooks are
    not run (``runs`` off: ``--no-run``) the notebook's earlier run, never ``not-run``."""
    for r in results:
        earlier = stored.results.get(r.student)
        if earlier is None or earlier is r:
            continue
        if earlier.manual_max > 0 and not r.manual_max:
            r.manual, r.manual_max = earlier.manual, earlier.manual_max
        if not runs and r.status == "not-run" and earlier.status in RUN_KEPT:
            r.run, r.status, r.detail = earlier.run, earlier.status, earlier.detail
