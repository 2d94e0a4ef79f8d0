"""`labkit grade` against hostile notebooks: forged passes, monkeypatching, vandalism, floods."""

from __future__ import annotations

from _grading import (
    REPO,
    digest,
)

from labkit.grade import student_id


# ---------------------------------------------------------------------------- hostile work
def test_printing_pass_and_stored_pass_outputs_earn_nothing(batch_a):
    row = batch_a["rows"]["prints_pass"]
    assert (row["score"], row["status"]) == ("0", "ok")


def test_redefining_the_checks_and_results_earns_nothing(batch_a):
    row = batch_a["rows"]["fake_checks"]
    assert (row["score"], row["status"]) == ("0", "ok")
    statuses = [e.status for e in batch_a["results"]["fake_checks"].exercises]
    assert statuses == ["stub", "stub", "stub"]


def test_monkeypatching_labkit_earns_nothing_and_stays_in_its_copy(batch_a):
    row = batch_a["rows"]["monkeypatch"]
    assert row["score"] == "0", row  # (its unscaled images later make the viewer raise)
    by_id = {e.id: e for e in batch_a["results"]["monkeypatch"].exercises}
    assert by_id["00.scale"].message == (
        "on a 2x2 uint8 image: expected dtype float32, got dtype uint8"
    )
    assert by_id["00.count_positive"].message.endswith(
        "your code calls labkit's own implementation (demo_exercises.count_positive); "
        "the exercise asks you to write it yourself"
    )
    assert by_id["00.dice"].message == "on two half-overlapping masks: expected 0.5, got 1"
    # The files it rewrote were its private copies: the real ones are untouched...
    for path, before in batch_a["protected"].items():
        assert digest(path) == before, path
    # ... and everyone else was graded with the real references.
    assert batch_a["rows"]["solution"]["score"] == "4"


def test_vandalising_files_changes_nothing_for_anyone(batch_a):
    subs, out = batch_a["subs"], batch_a["out"]
    remaining = [p.name for p in subs.glob("*.ipynb")]
    if batch_a["results"]["vandal"].sandbox == "bwrap":
        assert len(remaining) == 9  # in the sandbox it cannot even see the submissions
    else:
        assert remaining == ["vandal.ipynb"]  # the attack happened
    table = batch_a["rows"]
    assert len(table) == 9 and table["vandal"]["score"] == "4"
    assert (table["solution"]["score"], table["partial"]["score"]) == ("4", "2")
    assert not (out / "feedback" / "ghost.md").exists()
    assert "**Score: 4 / 4**" in (out / "feedback" / "vandal.md").read_text()
    assert not (REPO / "stray.txt").exists()


def test_huge_output_is_capped_and_ignored(batch_a):
    result = batch_a["results"][student_id("Huge Output (v2)!")]
    assert (result.score, result.status) == (4.0, "ok")
    assert result.run["output_truncated"] is True
    feedback = batch_a["out"] / "feedback" / f"{student_id('Huge Output (v2)!')}.md"
    assert feedback.stat().st_size < 10_000
    assert "most of the output was dropped" in feedback.read_text()
    assert (batch_a["out"] / "gradebook.csv").stat().st_size < 5_000
