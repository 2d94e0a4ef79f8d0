"""Sharded grading: ``--shard K/N`` grades a fixed 1/N of the class; ``merge`` joins the shards.

A student belongs to shard ``1 + sha256(student id) mod N``: the same split on every machine,
whatever order the files are listed in, and a student never moves when classmates are added.
Each shard writes ``shard.json`` beside its gradebook: the lab, ``K/N``, labkit's version,
a digest of the hidden tests and of the exercise list, the run settings the feedback quotes,
every result, and a MAC of all of it under the run's secret (every shard is graded with the
same ``--secret FILE``). ``merge`` needs that secret and refuses a shard whose MAC does not
match (edited, or made without the secret), shards that differ in any of these, a missing
or repeated K, a student id that ``grade`` could not have made, and points outside the
lab's maxima; then it writes one ``gradebook.csv``, ``feedback/`` and summary, as one run
would, every file inside ``--out``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from labkit import __version__
from labkit.grade.judge import ExerciseResult, LabSpec
from labkit.grade.report import write_feedback, write_gradebook
from labkit.grade.secret import sign, signature_ok
from labkit.grade.submissions import StudentResult, Submission, is_student_id
from labkit.grade.wire import read_regular_file

RECORD = "shard.json"
MAX_RECORD_BYTES = 256 * 2**20


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``.

    Raises:
        ValueError: not ``K/N`` with ``1 <= K <= N``.
    """
    k, sep, n = str(text).partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"--shard must look like K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return int(k), int(n)


def shard_of(student: str, n: int) -> int:
    """The shard (1..n) a student id belongs to."""
    return 1 + int(hashlib.sha256(student.encode("utf-8")).hexdigest()[:16], 16) % n


def select(subs: list[Submission], shard: tuple[int, int]) -> list[Submission]:
    k, n = shard
    return [s for s in subs if shard_of(s.student, n) == k]


def fingerprint(lab: LabSpec) -> dict[str, Any]:
    """What must agree between shards: the lab, labkit, the hidden tests, the exercises."""
    hidden = hashlib.sha256()
    for rel in sorted(lab.snapshot):
        if rel.startswith(("labkit/grade/hidden/", "_hidden/")):
            hidden.update(rel.encode() + b"\0" + lab.snapshot[rel])
    return {
        "lab": lab.lab,
        "labkit_version": __version__,
        "hidden_tests": hidden.hexdigest(),
        "exercises": [[s.exercise.id, s.exercise.points] for s in lab.specs],
        "questions": [q.id for q in lab.questions],
    }


def _canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")


def write_record(
    out: Path, lab: LabSpec, shard: tuple[int, int], results: list, settings: dict, secret: bytes
) -> None:
    record = {
        **fingerprint(lab),
        "shard": list(shard),
        "settings": settings,
        "results": [{**dataclasses.asdict(r), "log": ""} for r in results],
    }
    data = _canonical(record)
    # The MAC on the first line, the record after it: merge checks the bytes it read before
    # parsing any of them (a record's students' text cannot make it refuse or misread one).
    (out / RECORD).write_bytes(sign(secret, data).encode("ascii") + b"\n" + data + b"\n")


def checked_result(data: dict, maxima: dict[str, float], where: Path) -> StudentResult:
    """A result from a stored record (a shard's, or ``results.json``), checked as ``grade``
    would have made it."""
    exercises = [ExerciseResult(**e) for e in data.pop("exercises")]
    result = StudentResult(**data, exercises=exercises)
    kinds = {"student": str, "lab": str, "file": str, "status": str, "detail": str,
             "seconds": (int, float), "run": dict, "sandbox": str, "answers": dict,
             "manual": dict, "manual_max": (int, float), "log": str}  # fmt: skip
    wrong = [k for k, kind in kinds.items() if not isinstance(getattr(result, k), kind)]
    if wrong or any(not isinstance(getattr(e, "points", None), (int, float)) for e in exercises):
        raise ValueError(f"{where}: a result whose fields are not of their kinds: {wrong}")
    if not is_student_id(result.student):
        raise ValueError(f"{where}: {result.student!r} is not a student id `grade` makes")
    if [e.id for e in exercises] != list(maxima):
        raise ValueError(f"{where}: {result.student}'s exercises are not the lab's")
    for e in exercises:
        if float(e.max_points) != maxima[e.id] or not 0 <= e.points <= maxima[e.id]:
            raise ValueError(
                f"{where}: {result.student} has {e.points!r} of {e.max_points!r} points for "
                f"{e.id}, which is worth {maxima[e.id]:g}"
            )
    manual = sum(result.manual.values()) if isinstance(result.manual, dict) else -1
    if not 0 <= manual <= float(result.manual_max) or result.manual_max < 0:
        raise ValueError(f"{where}: {result.student}'s hand-given marks are out of range")
    return result


def merge(dirs: list[str | Path], out: str | Path, secret: bytes) -> list[StudentResult]:
    """Join shard folders into one gradebook, feedback folder and result list.

    Args:
        secret: the run's secret every shard was graded with (``--secret FILE``).

    Raises:
        ValueError: a folder without ``shard.json``, a record whose MAC does not match,
            shards of different labs, hidden tests, exercises, labkit versions or N, a
            missing or repeated shard, a student graded twice, an id ``grade`` could not
            have made, or points outside the lab's maxima.
    """
    records = []
    for folder in map(Path, dirs):
        data, problem = read_regular_file(folder / RECORD, MAX_RECORD_BYTES)
        if data is None:
            raise ValueError(
                f"{folder}: no readable {RECORD} (was it graded with --shard K/N?): {problem}"
            )
        mac, _, body = data.partition(b"\n")
        if not signature_ok(secret, body.rstrip(b"\n"), mac.decode("ascii", "replace")):
            raise ValueError(
                f"{folder / RECORD}: its MAC does not match: it was changed after grading, or "
                "graded with another --secret; grade it again"
            )
        record = json.loads(body)  # signed by this run's secret: written by grade itself
        records.append((folder, record))
    if not records:
        raise ValueError("merge needs at least one shard folder")
    first_dir, first = records[0]
    keys = ("lab", "labkit_version", "hidden_tests", "exercises", "questions")
    for folder, rec in records[1:]:
        for key in keys:
            if rec.get(key) != first.get(key):
                what = key.replace("_", " ")
                raise ValueError(
                    f"cannot merge {folder} with {first_dir}: their {what} differ "
                    f"({rec.get(key)!r} vs {first.get(key)!r}); grade every shard alike"
                )
    n = first["shard"][1]
    seen = sorted(rec["shard"][0] for _, rec in records)
    if any(rec["shard"][1] != n for _, rec in records) or seen != list(range(1, n + 1)):
        got = ", ".join(f"{rec['shard'][0]}/{rec['shard'][1]}" for _, rec in records)
        raise ValueError(f"cannot merge: expected shards 1/{n} to {n}/{n} once each, got {got}")
    maxima = {str(i): float(p) for i, p in first["exercises"]}
    try:
        results = [checked_result(dict(r), maxima, d) for d, rec in records for r in rec["results"]]
    except (TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"cannot merge: a result is not in its form ({err})") from None
    students = [r.student for r in results]
    if len(set(students)) != len(students):
        raise ValueError("cannot merge: a student appears in two shards")
    results.sort(key=lambda r: r.student)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exercises = [SimpleNamespace(id=i) for i, _ in first["exercises"]]
    columns = first["questions"] if any(r.manual for r in results) else []
    write_gradebook(out / "gradebook.csv", results, exercises, columns)
    write_feedback(out / "feedback", results, SimpleNamespace(**first["settings"]))
    return results
