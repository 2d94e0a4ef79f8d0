"""`labkit grade` on what is submitted: invalid files, ids, the command line."""

from __future__ import annotations

import json
import os

import pytest
from _grading import (
    write,
)

from labkit.grade import find_submissions, student_id
from labkit.grade.submissions import MAX_NOTEBOOK_BYTES, read_notebook


@pytest.mark.parametrize(
    "student, reason",
    [
        ("not_json", "the file is not valid JSON (line 1"),
        ("not_a_notebook", "the file is JSON but not a Jupyter notebook"),
        ("other_lab", "this is the notebook of lab 01, not lab 00"),
        (
            "no_cells",
            "none of lab 00's exercise cells (Min-max scaling (00.scale); Counting positive "
            "pixels (00.count_positive); Dice coefficient (00.dice))",  # as the student knows them
        ),
        ("no_notebook", "no .ipynb notebook in the folder no_notebook/"),
        ("two", "several notebooks in two/ (00_demo.ipynb, 00_demo_copy.ipynb)"),
    ],
)
def test_invalid_submissions_get_a_row_and_a_reason(batch_b, student, reason):
    row = batch_b["rows"][student]
    assert (row["status"], row["score"], row["max_score"]) == ("invalid", "0", "4")
    assert row["detail"].startswith(reason), row["detail"]
    feedback = (batch_b["out"] / "feedback" / f"{student}.md").read_text()
    assert "Your submission could not be graded" in feedback


def test_command_line_prints_a_summary_and_succeeds(batch_b):
    assert batch_b["code"] == 0, batch_b["errors"]
    lines = batch_b["printed"].splitlines()
    assert lines[0].split() == ["student", "score", "status", "seconds", "detail"]
    assert any(line.split()[:3] == ["raises", "4/4", "error"] for line in lines)
    assert "8 submission(s) graded in" in batch_b["printed"]
    assert "gradebook:" in lines[-1]


# ---------------------------------------------------------------------------- pieces
def test_student_ids_are_safe_file_names_and_one_to_one():
    assert student_id("alice.smith-2") == "alice.smith-2"  # a safe name is its own id
    zoe = student_id("Zoë O'Brien (late)")
    assert zoe.startswith("Zoe_O_Brien_late~") and len(zoe) == len("Zoe_O_Brien_late~") + 8
    assert student_id("../../etc/passwd").startswith("etc_passwd~")
    assert student_id("...").startswith("student~")
    # A name that only sanitises to another student's id cannot take it.
    assert student_id("honest!") != student_id("honest") == "honest"
    assert student_id("honest!") != student_id("honest?")


def test_find_submissions_never_renumbers_and_flags_ambiguous_ids(tmp_path):
    for name in ("honest", "honest!", "honest-2", "Bob", "bob"):
        write(tmp_path, f"{name}.ipynb", "{}")
    write(tmp_path, "notes.txt", "not a submission")
    write(tmp_path / ".ipynb_checkpoints", "honest-checkpoint.ipynb", "{}")
    subs = {s.path.name: s for s in find_submissions(tmp_path, "00", per_student_folders=False)}
    assert sorted(subs) == [
        "Bob.ipynb",
        "bob.ipynb",
        "honest!.ipynb",
        "honest-2.ipynb",
        "honest.ipynb",
    ]
    assert (subs["honest.ipynb"].student, subs["honest.ipynb"].data) == ("honest", b"{}")
    assert subs["honest-2.ipynb"].student == "honest-2" and not subs["honest-2.ipynb"].problem
    assert subs["honest!.ipynb"].student.startswith("honest~")
    ids = [s.student.lower() for s in subs.values()]
    assert len(set(ids)) == len(ids) - 1  # only Bob/bob share one (case-insensitively)
    for name in ("Bob.ipynb", "bob.ipynb"):
        assert subs[name].problem.startswith("ambiguous student id: Bob.ipynb, bob.ipynb")
        assert subs[name].data is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no submissions in .*empty"):
        find_submissions(tmp_path / "empty", "00", False)


def test_links_and_special_files_are_refused_never_followed(tmp_path):
    secret = write(tmp_path / "instructor", "solution.ipynb", '{"cells": []}')
    flat = tmp_path / "flat"
    write(flat, "honest.ipynb", "{}")
    (flat / "copycat.ipynb").symlink_to(flat / "honest.ipynb")
    (flat / "thief.ipynb").symlink_to(secret)
    os.mkfifo(flat / "pipe.ipynb")  # a plain open() would block the grader forever
    (flat / "folder.ipynb").mkdir()
    subs = {s.path.name: s for s in find_submissions(flat, "00", False)}
    assert subs["honest.ipynb"].data == b"{}"
    for name in ("copycat.ipynb", "thief.ipynb"):
        assert subs[name].data is None and "symbolic link" in subs[name].problem
    for name in ("pipe.ipynb", "folder.ipynb"):
        assert subs[name].data is None and "not a regular file" in subs[name].problem
    folders = tmp_path / "folders"
    write(folders / "honest", "00_demo.ipynb", "{}")
    (folders / "copycat").symlink_to(folders / "honest")
    write(folders / "linker", "notes.txt", "")
    (folders / "linker" / "00_demo.ipynb").symlink_to(secret)
    (folders / "linker" / "sub").symlink_to(tmp_path / "instructor", target_is_directory=True)
    subs = {s.student: s for s in find_submissions(folders, "00", True)}
    assert subs["honest"].data == b"{}"
    assert subs["copycat"].data is None and "not a folder" in subs["copycat"].problem
    assert subs["linker"].data is None and "symbolic link" in subs["linker"].problem


def test_oversized_and_deeply_nested_notebooks_are_invalid_not_a_crash(tmp_path):
    def problem(text: str) -> str:
        path = write(tmp_path, "x.ipynb", text)
        (sub,) = find_submissions(path, "00", False)
        nb, why = read_notebook(sub, "00")
        assert nb is None
        return why

    cell = {"cell_type": "code", "source": "x = 1\n" * 50_000, "metadata": {}, "outputs": []}
    assert "holds 300,000 characters; the limit is" in problem(json.dumps({"cells": [cell]}))
    assert "nested more than 64 levels" in problem("[" * 100_000 + "]" * 100_000)
    assert "nested more than 64 levels" in problem('{"cells": [' + "[" * 500 + "]" * 500 + "]}")
    big = tmp_path / "big"
    write(big, "huge.ipynb", " " * (MAX_NOTEBOOK_BYTES + 1))
    (sub,) = find_submissions(big, "00", False)
    assert sub.data is None and "the limit is 50 MB" in sub.problem
