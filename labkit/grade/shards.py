"""Sharded grading: ``--shard K/N`` grades a fixed 1/N of the class; ``merge`` joins the shards.

A student belongs to shard ``1 + sha256(student id) mod N``: the same split on every machine,
whatever order the files are listed in, and a student never moves when classmates are added.
Each shard writes ``shard.json`` beside its gradebook: the lab, ``K/N``, labkit's version,
a digest of the hidden tests and of the exercise list, the run settings the feedback quotes,
and every result. ``merge`` refuses shards that differ in any of these (or that miss or
repeat a K), then writes one ``gradebook.csv``, ``feedback/`` and summary, as one run would.
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
from labkit.grade.submissions import StudentResult, Submission

RECORD = "shard.json"


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


def write_record(
    out: Path, lab: LabSpec, shard: tuple[int, int], results: list, settings: dict
) -> None:
    record = {
        **fingerprint(lab),
        "shard": list(shard),
        "settings": settings,
        "results": [dataclasses.asdict(r) for r in results],
    }
    (out / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")


def _result(data: dict) -> StudentResult:
    exercises = [ExerciseResult(**e) for e in data.pop("exercises")]
    return StudentResult(**data, exercises=exercises)


def merge(dirs: list[str | Path], out: str | Path) -> list[StudentResult]:
    """Join shard folders into one gradebook, feedback folder and result list.

    Raises:
        ValueError: a folder without ``shard.json``, shards of different labs, hidden
            tests, exercises, labkit versions or N, a missing or repeated shard, or a
            student graded twice.
    """
    records = []
    for folder in map(Path, dirs):
        try:
            records.append((folder, json.loads((folder / RECORD).read_text(encoding="utf-8"))))
        except (OSError, ValueError) as err:
            raise ValueError(
                f"{folder}: no readable {RECORD} (was it graded with --shard K/N?): {err}"
            ) from None
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
    results = [_result(dict(r)) for _, rec in records for r in rec["results"]]
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
