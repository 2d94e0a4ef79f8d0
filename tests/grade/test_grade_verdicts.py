"""Verdicts are reached where the reference lives, from raw outputs (issue 24, class 6).

Lab 07's patch sampler is random, so it is judged by behaviour: the student's process only
reports the starts its function drew for three secret generator seeds (and the first seed
again); the grader measures bounds, the positive share, uniformity and randomness itself.
Graded here with the real lab 07 (hidden tests only): the solution, a sampler written from
the exercise text alone (it raises nothing for a patch larger than the volume, which the
text does not ask for), and wrong or hostile ones. The notebook's own check must give the
same verdict on each (one specification).
"""

from __future__ import annotations

import pytest
from _grading import REPO, edited, write

from labkit import checks
from labkit.course.build import build_lab, find_labs
from labkit.grade import Options, grade

EXERCISE = "07.sample_patch_starts"
FROM_THE_TEXT = """\
def sample_patch_starts(shape, positives, patch, n, positive_share=0.5, generator=None):
    size = torch.tensor(patch)
    high = torch.tensor(shape) - size
    n_pos = round(n * positive_share) if len(positives) > 0 else 0
    starts = []
    for i in range(n):
        if i < n_pos:
            v = positives[torch.randint(len(positives), (1,), generator=generator)[0]]
            o = torch.stack([torch.randint(p, (1,), generator=generator)[0] for p in patch])
            s = torch.minimum(torch.maximum(v - o, torch.zeros(3, dtype=torch.long)), high)
        else:
            s = torch.stack([torch.randint(int(h) + 1, (1,), generator=generator)[0] for h in high])
        starts.append(s)
    return torch.stack(starts).long()
"""
NOT_RANDOM = FROM_THE_TEXT.replace(
    "    size = torch.tensor(patch)\n",
    "    size = torch.tensor(patch)\n    generator = torch.Generator().manual_seed(0)\n",
)
IGNORES_SHARE = FROM_THE_TEXT.replace(
    "round(n * positive_share) if len(positives) > 0 else 0",
    "n if len(positives) > 0 else 0",
)
# The published attack's shape: helpers of the checks rewritten inside an `if` block (which
# the definitions filter runs), then a sampler that draws nothing at random.
PATCHER = """\
import torch
if True:
    import labkit.exercises.lab07 as _lab07
    import labkit.checks.probes as _probes
    _lab07.judge_sampler = lambda *args, **kwargs: None
    _probes.judge_probe.__globals__["_failed"] = lambda message: {"kind": "value", "value": 0}
    _lab07.report = lambda evidence, value: {"evidence": {"calls": [], "again": None}, "value": 0}

def sample_patch_starts(shape, positives, patch, n, positive_share=0.5, generator=None):
    return torch.zeros(n, 3, dtype=torch.long)
"""
VARIANTS = {
    "from_the_text": (FROM_THE_TEXT, True),
    "not_random": (NOT_RANDOM, False),
    "ignores_share": (IGNORES_SHARE, False),
    "patcher": (PATCHER, False),
}


@pytest.fixture(scope="module")
def lab07(tmp_path_factory):
    base = tmp_path_factory.mktemp("verdicts")
    (source,) = find_labs(REPO / "solutions", ["07"])
    _, _, solution = build_lab(source, base / "build")
    write(base / "subs", "solution.ipynb", solution)
    for name, (code, _) in VARIANTS.items():
        write(base / "subs", f"{name}.ipynb", edited(solution, {EXERCISE: code}))
    options = Options(source=REPO / "solutions", run=False, jobs=2, progress=False)
    results = {r.student: r for r in grade(base / "subs", "07", base / "out", options)}
    return {"results": results, "solution": solution}


def _sampler(result):
    return next(e for e in result.exercises if e.id == EXERCISE)


@pytest.mark.slow
def test_the_solution_and_a_sampler_written_from_the_text_pass(lab07):
    assert lab07["results"]["solution"].score == 7.0
    got = _sampler(lab07["results"]["from_the_text"])
    assert (got.status, got.points) == ("pass", 2.0), got


@pytest.mark.slow
@pytest.mark.parametrize("name", ["not_random", "ignores_share", "patcher"])
def test_samplers_that_do_not_behave_fail_whatever_they_patch(lab07, name):
    got = _sampler(lab07["results"][name])
    assert got.status in ("fail", "crashed") and got.points == 0, got
    # Everything else in the notebook is the solution's: only this exercise is lost.
    assert lab07["results"][name].score == 5.0


@pytest.mark.parametrize("name", ["from_the_text", "not_random", "ignores_share"])
def test_the_notebooks_check_gives_the_same_verdict(name):
    """The notebook's check (the same probes, judged in the kernel's process) agrees. (The
    patcher is left out: in the notebook it would only fool its own student.)"""
    import torch

    from labkit.checks.notebook import run_tests

    code, passes = VARIANTS[name]
    namespace: dict = {"torch": torch}
    exec(compile(code, f"<{name}>", "exec"), namespace)
    outcome = run_tests(checks.get_exercise(EXERCISE), namespace["sample_patch_starts"])
    assert (outcome.status == "pass") is passes, outcome
