"""Sharded grading (issue 19): `--shard K/N` splits the class by student id; `merge` joins.

The demo lab, hidden tests only (`run=False`), one secret: the class graded whole and in
two shards; the merged gradebook and feedback must equal the whole run's. A shard's record
is signed with the run's secret: an edited one, or one that names a path or more points
than the lab has, is refused (issue 24, class 8).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from _grading import DEMO_LAB, HIDDEN_DIR, PARTIAL, demo_notebooks, edited, write

from labkit.cli import main as cli_main
from labkit.grade import Options, find_submissions, grade
from labkit.grade.secret import read_secret_file, sign
from labkit.grade.shards import merge, parse_shard, select, shard_of

STUDENTS = ["ana", "ben", "chloe", "dev", "eli", "fay"]
SECRET = bytes(range(100, 132))


def _without_timing(text: str) -> str:
    return re.sub(r"\d+\.\d s", "S s", text)


def _table(path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    seconds = lines[0].split(",").index("seconds")
    return [[c for i, c in enumerate(line.split(",")) if i != seconds] for line in lines]


@pytest.fixture(scope="module")
def sharded(demo_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    student, solution = demo_notebooks(base / "build")
    kinds = [solution, student, edited(student, PARTIAL)]
    for i, name in enumerate(STUDENTS):
        write(base / "subs", f"{name}.ipynb", kinds[i % 3])
    # A written answer of 60 "[" (the red team's): it must not stop the merge.
    brackets = edited(solution)
    (question,) = [c for c in brackets.cells if "Question." in c.source]
    question.source = "My answer " + "[" * 60
    write(base / "subs", "gil.ipynb", brackets)
    options = Options(
        source=DEMO_LAB.parent,
        hidden_dirs=(HIDDEN_DIR,),
        run=False,
        jobs=2,
        progress=False,
        secret=SECRET,
    )
    grade(base / "subs", "00", base / "all", options)
    for k in (1, 2):
        shard = Options(**{**vars(options), "shard": (k, 2)})
        grade(base / "subs", "00", base / f"shard{k}", shard)
    merge([base / "shard2", base / "shard1"], base / "merged", SECRET)
    return base


def test_the_split_is_fixed_by_student_id_whatever_the_order(tmp_path):
    assert parse_shard("2/4") == (2, 4)
    with pytest.raises(ValueError, match="--shard must look like K/N"):
        parse_shard("5/4")
    for name in STUDENTS:
        write(tmp_path, f"{name}.ipynb", "{}")
    subs = find_submissions(tmp_path, "00", False)
    parts = [[s.student for s in select(subs, (k, 3))] for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == STUDENTS  # a partition
    again = [[s.student for s in select(list(reversed(subs)), (k, 3))] for k in (1, 2, 3)]
    assert [sorted(p) for p in again] == [sorted(p) for p in parts]
    assert all(shard_of(name, 3) == k + 1 for k, p in enumerate(parts) for name in p)


def test_merged_shards_equal_the_unsharded_run(sharded):
    parts = [_record(sharded / f"shard{k}" / "shard.json") for k in (1, 2)]
    assert all(p["results"] for p in parts)  # both shards hold students
    assert "gil" in {r["student"] for p in parts for r in p["results"]}
    assert _table(sharded / "merged" / "gradebook.csv") == _table(sharded / "all" / "gradebook.csv")
    whole = sorted(p.name for p in (sharded / "all" / "feedback").iterdir())
    assert sorted(p.name for p in (sharded / "merged" / "feedback").iterdir()) == whole
    for name in whole:
        a = (sharded / "all" / "feedback" / name).read_text()
        b = (sharded / "merged" / "feedback" / name).read_text()
        assert _without_timing(a) == _without_timing(b), name


def _record(path) -> dict:
    """A shard.json's record (the line after its MAC)."""
    return json.loads(path.read_bytes().partition(b"\n")[2])


def _resigned(record: dict) -> bytes:
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return sign(SECRET, data).encode() + b"\n" + data + b"\n"


def test_mismatched_or_missing_shards_are_refused(sharded, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(sharded / "shard2", other)
    record = _record(other / "shard.json")
    for key, value, words in [  # shards signed with the secret, graded differently
        ("lab", "01", "their lab differ"),
        ("hidden_tests", "0" * 64, "their hidden tests differ"),
        ("labkit_version", "9.9", "their labkit version differ"),
    ]:
        (other / "shard.json").write_bytes(_resigned({**record, key: value}))
        with pytest.raises(ValueError, match=words):
            merge([sharded / "shard1", other], tmp_path / "out", SECRET)
    with pytest.raises(ValueError, match="expected shards 1/2 to 2/2 once each, got 1/2"):
        merge([sharded / "shard1"], tmp_path / "out", SECRET)
    code = cli_main(["grade", "merge", str(sharded / "shard1"), str(tmp_path), "--out", "x"])
    assert code == 2 and "merge needs --secret FILE" in capsys.readouterr().err


def test_a_tampered_shard_is_refused_and_nothing_lands_outside_out(sharded, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(sharded / "shard2", other)
    record = _record(other / "shard.json")
    first = record["results"][0]
    # Without the secret: any edit breaks the MAC (here 100 points more for one student).
    first["exercises"][0]["earned"] = 100.0
    mac = (other / "shard.json").read_bytes().partition(b"\n")[0]
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    (other / "shard.json").write_bytes(mac + b"\n" + data + b"\n")
    with pytest.raises(ValueError, match="its MAC does not match"):
        merge([sharded / "shard1", other], tmp_path / "out", SECRET)
    with pytest.raises(ValueError, match="its MAC does not match"):  # another run's secret
        merge([sharded / "shard1", sharded / "shard2"], tmp_path / "out", bytes(range(32)))
    # Even signed with the secret, an id grade cannot make or points above the maxima fail.
    first["exercises"][0].update(earned=None, status="pass", max_points=100.0)
    (other / "shard.json").write_bytes(_resigned(record))
    with pytest.raises(ValueError, match="which is worth 1"):
        merge([sharded / "shard1", other], tmp_path / "out", SECRET)
    record = _record(sharded / "shard2" / "shard.json")
    record["results"][0]["student"] = "../../../escaped"
    (other / "shard.json").write_bytes(_resigned(record))
    with pytest.raises(ValueError, match="is not a student id"):
        merge([sharded / "shard1", other], tmp_path / "out" / "deep", SECRET)
    assert not list(tmp_path.rglob("escaped*"))


def test_secret_files_are_made_once_private_and_strong(tmp_path, capsys):
    path = tmp_path / "class.secret"
    assert cli_main(["grade", "secret", str(path)]) == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600" and len(read_secret_file(path)) == 32
    assert cli_main(["grade", "secret", str(path)]) == 2  # never overwritten
    assert "exists already" in capsys.readouterr().err
    for text, words in [
        ("ab", "at least 128"),
        ("11" * 32, "does not look random"),
        ("xyz", "hex"),
    ]:
        weak = write(tmp_path, "weak.secret", text)
        with pytest.raises(ValueError, match=words):
            read_secret_file(weak)
    subs = tmp_path / "subs"
    write(subs, "ana.ipynb", "{}")
    code = cli_main(
        ["grade", str(subs), "--lab", "00", "--out", str(tmp_path / "o"), "--shard", "1/2"]
    )
    assert code == 2 and "--shard needs --secret FILE" in capsys.readouterr().err
