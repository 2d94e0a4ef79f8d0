"""Each written question of every lab gets its own mark (issue 26): the grader finds as many
questions as the lab's text asks ("**Question N.**"), and every question's number is in
order. A cell that asked five questions under one answer place gave one mark (lab 07)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labkit.grade.judge import prepare_lab

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"
LABS = sorted(p.name[:2] for p in SOLUTIONS.glob("0*.py"))


@pytest.mark.parametrize("lab", LABS)
def test_every_question_the_text_asks_gets_its_own_mark(lab):
    (source,) = SOLUTIONS.glob(f"{lab}_*.py")
    asked = re.findall(r"^# \*\*Question (\d+)\.\*\*", source.read_text(), flags=re.M)
    assert asked == [str(n) for n in range(1, len(asked) + 1)], asked
    questions = prepare_lab(lab, SOLUTIONS).questions
    assert [q.id for q in questions] == [f"Q{n}" for n in range(1, len(asked) + 1)]
