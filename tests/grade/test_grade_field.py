"""`labkit grade` as a new instructor meets it (issue 26, round 2): feedback names exercises as
the student sees them, the hashed student ids are explained in --help, --manual only merges
marks into an earlier grading, --no-run never overwrites a notebook's earlier run, and no
kernel connection file is left behind. Real command-line runs of the fixture lab, each in
its own temporary and Jupyter runtime folders."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _grading import DEMO_LAB, FIXTURES, HIDDEN_DIR, demo_notebooks, edited, rows, write

from labkit.grade.grader import GRADE_FOLDER_PREFIX
from labkit.grade.submissions import is_student_id, student_id

WRONG_SCALE = {"00.scale": "def scale(x):\n    return x  # not scaled\n"}
NAME = "Ana María"  # a file name with characters an id cannot keep


def _grade(base: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TMPDIR=str(base / "tmp"), JUPYTER_RUNTIME_DIR=str(base / "rt"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    env["LABKIT_EXERCISE_MODULES"] = "demo_exercises"
    command = [sys.executable, "-m", "labkit", "grade", str(base / "subs"), "--lab", "00"]
    command += ["--source", str(DEMO_LAB.parent), "--hidden", str(HIDDEN_DIR)]
    command += ["--out", str(base / "out"), "--jobs", "2", "--no-progress", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Grading 1 (two notebooks, one ends in an error); grading 2 with --manual after a late
    submission came in; grading 3 with --no-run."""
    base = tmp_path_factory.mktemp("field")
    (base / "tmp").mkdir()
    (base / "rt").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a grading killed outright left its working folder: the next one removes it
    stale = base / "tmp" / f"{GRADE_FOLDER_PREFIX}{dead.pid}-x" / "work"
    stale.mkdir(parents=True)
    (stale / "kernel-stale.json").write_text("{}")
    _, solution = demo_notebooks(base / "build")
    write(base / "subs", f"{NAME}.ipynb", edited(solution, WRONG_SCALE))
    write(base / "subs", "boom.ipynb", edited(solution, at_end="raise RuntimeError('boom')"))
    first = _grade(base, "--timeout", "120")
    graded = {"rows": rows(base / "out"), "proc": first}
    graded["left"] = [p for d in ("tmp", "rt") for p in (base / d).rglob("*")]
    answered = edited(solution)
    (cell,) = [c for c in answered.cells if "Question." in c.source]
    cell.source = "Predicting background is right on almost every pixel."
    write(base / "subs", "late.ipynb", answered)
    marks = write(base, "marks.csv", f"student,Q1\n#max,2\n{student_id(NAME)},1.5\nlate,2\n")
    manual = _grade(base, "--manual", str(marks))
    manual_rows = rows(base / "out")
    no_run = _grade(base, "--no-run")
    return {
        "base": base,
        "first": graded,
        "manual": {"proc": manual, "rows": manual_rows},
        "no_run": {"proc": no_run, "rows": rows(base / "out")},
    }


def test_feedback_names_the_section_and_title_with_the_id_for_the_instructor(runs):
    feedback = (runs["base"] / "out" / "feedback" / f"{student_id(NAME)}.md").read_text()
    name = "section “Exercise 1: min-max scaling”, Min-max scaling (00.scale)"
    assert f"| {name} | failed | 0 / 1 |" in feedback
    assert f"## {name}: failed (0 / 1)" in feedback
    assert "section “Exercise 3: the Dice coefficient”, Dice coefficient (00.dice)" in feedback
    assert "## 00.scale" not in feedback and "| 00.scale " not in feedback


def test_help_explains_the_hashed_ids_and_how_to_map_them_back(runs):
    text = subprocess.run(
        [sys.executable, "-m", "labkit", "grade", "--help"], capture_output=True, text=True
    ).stdout
    (line,) = [ln for ln in text.splitlines() if "sha256sum" in ln]  # one line says it all
    found = re.search(r"printf %s '([^']+)' \| sha256sum` starts ([0-9a-f]{8}): (\S+?)\)", line)
    assert found, line
    name, digits, example = found.groups()
    assert hashlib.sha256(name.encode()).hexdigest()[:8] == digits
    assert student_id(name) == example == f"{example.split('~')[0]}~{digits}"
    # and on a real grading: the id of "Ana María.ipynb" maps back the way the help says
    sid = student_id(NAME)
    assert sid == f"Ana_Maria~{hashlib.sha256(NAME.encode()).hexdigest()[:8]}"
    assert sid in runs["first"]["rows"]
    page = (runs["base"] / "out" / "feedback" / f"{sid}.md").read_text()
    assert f"notebook {NAME}.ipynb" in page.splitlines()[2]  # the page names the file


def test_manual_merges_marks_without_running_graded_notebooks_again(runs):
    first, manual = runs["first"]["rows"], runs["manual"]
    assert manual["proc"].returncode == 0, manual["proc"].stderr
    assert "2 submission(s) unchanged since they were graded" in manual["proc"].stderr
    assert "nothing run again; 1 graded now" in manual["proc"].stderr
    for sid in (student_id(NAME), "boom"):  # the stored results, not a new run
        assert manual["rows"][sid]["seconds"] == first[sid]["seconds"]
        assert manual["rows"][sid]["status"] == first[sid]["status"]
    assert (manual["rows"][student_id(NAME)]["Q1"], manual["rows"][student_id(NAME)]["score"]) == (
        "1.5",
        "4.5",  # 3 of 4 exercise points, and the written answer's 1.5
    )
    assert (manual["rows"]["late"]["status"], manual["rows"]["late"]["score"]) == ("ok", "6")


def test_no_run_keeps_each_notebooks_earlier_run(runs):
    no_run = runs["no_run"]
    assert no_run["proc"].returncode == 0, no_run["proc"].stderr
    table = no_run["rows"]
    assert table["boom"]["status"] == "error" and "boom" in table["boom"]["detail"]
    assert table[student_id(NAME)]["status"] == "ok" and table["late"]["status"] == "ok"
    assert table[student_id(NAME)]["Q1"] == "1.5"  # the hand-given mark stays too
    feedback = (runs["base"] / "out" / "feedback" / "boom.md").read_text()
    assert "RuntimeError: boom" in feedback and "was not run this time" not in feedback
    record = json.loads((runs["base"] / "out" / "results.json").read_text().split("\n", 1)[1])
    assert {r["student"]: r["status"] for r in record["results"]}["boom"] == "error"


def test_a_results_json_the_grader_did_not_write_is_not_trusted(runs):
    # the stored record carries an HMAC under a key only the grader's user holds: raising a
    # mark in it (or forging one beside the submissions) gets everything graded again
    base, sid = runs["base"], student_id(NAME)
    out = base / "out"
    mac, body = (out / "results.json").read_text().split("\n", 1)
    record = json.loads(body)
    (mine,) = [r for r in record["results"] if r["student"] == sid]
    for e in mine["exercises"]:
        if e["id"] == "00.scale":
            e["points"], e["status"] = e["max_points"], "pass"
    (out / "results.json").write_text(mac + "\n" + json.dumps(record, sort_keys=True))
    marks = base / "marks.csv"
    again = _grade(base, "--manual", str(marks), "--no-run")
    assert again.returncode == 0, again.stderr
    assert "unchanged since they were graded" not in again.stderr  # nothing was reused
    assert rows(out)[sid]["score"] == "4.5"  # 3 of 4 exercise points again, not 4


def test_out_inside_the_submissions_folder_is_refused(runs):
    base = runs["base"]
    proc = _grade(base, "--out", str(base / "subs" / "graded"))  # the later --out wins
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert any("--out" in ln and "inside the submissions folder" in ln for ln in lines), lines
    assert not (base / "subs" / "graded").exists()


@pytest.mark.parametrize(
    "option", ["--timeout", "--test-timeout", "--max-ram", "--max-memory", "--max-disk"]
)
@pytest.mark.parametrize("value", ["nan", "-1", "0"])
def test_a_limit_that_is_not_a_positive_number_is_refused(option, value):
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "grade", "subs", "--lab", "01", "--out", "o", option, value],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{option}: expected a number above 0, got '{value}'" in proc.stderr


@pytest.mark.parametrize(
    "option,value",
    [("--timeout", "1e300"), ("--test-timeout", "1e300"), ("--max-memory", "1e10"),
     ("--max-disk", "1e12"), ("--max-ram", "1e-10"), ("--max-memory", "1e-10")],
)  # fmt: skip
def test_a_limit_the_sandbox_cannot_apply_is_refused(tmp_path, option, value):
    # each of these once zeroed every student (setrlimit overflow, bwrap's 0-byte tmpfs)
    (tmp_path / "subs").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "grade", "subs", "--lab", "01", "--out", "o", option, value],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"labkit grade: error: {option}: expected"), (
        lines
    )


def test_no_kernel_connection_file_is_left(runs):
    assert runs["first"]["proc"].returncode == 0, runs["first"]["proc"].stderr
    assert runs["first"]["rows"]["boom"]["status"] == "error"  # a failed run too
    assert runs["first"]["left"] == []  # the killed grading's folder went as well


@pytest.mark.parametrize("name", [NAME, "honest!", "x" * 80, "...", "a" * 47 + "_!b", "Bob"])
def test_every_id_grade_makes_is_read_back_from_its_records(name):
    """results.json and shard records are checked on reading: hashed ids must pass."""
    assert is_student_id(student_id(name))
    assert not is_student_id("../" + student_id(name))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labkit", "grade", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_grade_input_mistakes_are_one_line_naming_the_option(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    root = Path(__file__).resolve().parents[2]
    blank = root / "notebooks" / "01_data_exploration.ipynb"
    (subs / "ana.ipynb").write_bytes(blank.read_bytes())
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "marks.csv").write_bytes(b"student,Q1\n\xff\xfe\n")
    (tmp_path / "secret").write_text("x")
    cases = {
        "--out": ["subs", "--lab", "01", "--out", "afile", "--no-run"],
        "--manual": ["subs", "--lab", "01", "--out", "o", "--no-run", "--manual", "marks.csv"],
    }
    for option, args in cases.items():
        proc = subprocess.run(
            [sys.executable, "-m", "labkit", "grade", *args, "--source", str(root / "solutions")],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
        )  # fmt: skip
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and option in lines[0], lines
    merged = _cli("merge", str(tmp_path), "--out", str(tmp_path / "m"), "--manual", "x.csv")
    assert merged.returncode != 0 and "--manual: merge does not take" in merged.stderr
