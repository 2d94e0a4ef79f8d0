"""Sharded grading (issue 19): `--shard K/N` splits the class by student id; `merge` joins.

The demo lab, hidden tests only (`run=False`), a fixed seed: the class graded whole and in
two shards; the merged gradebook and feedback must equal the whole run's.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from _grading import DEMO_LAB, HIDDEN_DIR, PARTIAL, demo_notebooks, edited, write

from labkit.cli import main as cli_main
from labkit.grade import Options, find_submissions, grade
from labkit.grade.shards import merge, parse_shard, select, shard_of

STUDENTS = ["ana", "ben", "chloe", "dev", "eli", "fay"]


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
    options = Options(
        source=DEMO_LAB.parent, hidden_dirs=(HIDDEN_DIR,), run=False, jobs=2, progress=False, seed=7
    )
    grade(base / "subs", "00", base / "all", options)
    for k in (1, 2):
        shard = Options(**{**vars(options), "shard": (k, 2)})
        grade(base / "subs", "00", base / f"shard{k}", shard)
    merge([base / "shard2", base / "shard1"], base / "merged")
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
    parts = [json.loads((sharded / f"shard{k}" / "shard.json").read_text()) for k in (1, 2)]
    assert all(p["results"] for p in parts)  # both shards hold students
    assert _table(sharded / "merged" / "gradebook.csv") == _table(sharded / "all" / "gradebook.csv")
    whole = sorted(p.name for p in (sharded / "all" / "feedback").iterdir())
    assert sorted(p.name for p in (sharded / "merged" / "feedback").iterdir()) == whole
    for name in whole:
        a = (sharded / "all" / "feedback" / name).read_text()
        b = (sharded / "merged" / "feedback" / name).read_text()
        assert _without_timing(a) == _without_timing(b), name


def test_mismatched_or_missing_shards_are_refused(sharded, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(sharded / "shard2", other)
    record = json.loads((other / "shard.json").read_text())
    for key, value, words in [
        ("lab", "01", "their lab differ"),
        ("hidden_tests", "0" * 64, "their hidden tests differ"),
        ("labkit_version", "9.9", "their labkit version differ"),
    ]:
        (other / "shard.json").write_text(json.dumps({**record, key: value}))
        with pytest.raises(ValueError, match=words):
            merge([sharded / "shard1", other], tmp_path / "out")
    with pytest.raises(ValueError, match="expected shards 1/2 to 2/2 once each, got 1/2"):
        merge([sharded / "shard1"], tmp_path / "out")
    code = cli_main(["grade", "merge", str(sharded / "shard1"), str(tmp_path), "--out", "x"])
    assert code == 2 and "no readable shard.json" in capsys.readouterr().err
