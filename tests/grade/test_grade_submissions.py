"""`labkit grade` on what is submitted: invalid files, ids, the command line."""

from __future__ import annotations

import pytest
from _grading import (
    write,
)

from labkit.grade import find_submissions, student_id


@pytest.mark.parametrize(
    "student, reason",
    [
        ("not_json", "the file is not valid JSON (line 1"),
        ("not_a_notebook", "the file is JSON but not a Jupyter notebook"),
        ("other_lab", "this is the notebook of lab 01, not lab 00"),
        ("no_cells", "none of lab 00's exercise cells (00.scale, 00.count_positive, 00.dice)"),
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
def test_student_ids_are_safe_file_names():
    assert student_id("Zoë O'Brien (late)") == "Zoe_O_Brien_late"
    assert student_id("../../etc/passwd") == "etc_passwd"
    assert student_id("...") == "student"


def test_find_submissions_reads_files_and_separates_clashing_ids(tmp_path):
    write(tmp_path, "a b.ipynb", "{}")
    write(tmp_path, "a_b.ipynb", "{}")
    write(tmp_path, "notes.txt", "not a submission")
    write(tmp_path / ".ipynb_checkpoints", "a b-checkpoint.ipynb", "{}")
    subs = find_submissions(tmp_path, "00", per_student_folders=False)
    assert [(s.student, s.path.name, s.data) for s in subs] == [
        ("a_b", "a b.ipynb", b"{}"),
        ("a_b-2", "a_b.ipynb", b"{}"),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no submissions in .*empty"):
        find_submissions(tmp_path / "empty", "00", False)
