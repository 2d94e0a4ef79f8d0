"""``labkit grade``: mark students' lab notebooks with hidden tests; write a gradebook and feedback.

For each submitted notebook (one per student) the grader

1. reads the file (never its stored outputs); a file that is not JSON, not a notebook, of
   another lab or without any of the lab's exercise cells is ``invalid``;
2. finds each exercise cell statically (``labkit.course.build.exercise_cells``) and runs the lab's
   hidden tests (``labkit.grade.hidden``) on the student's *own* definitions from that cell,
   in a fresh worker process (``labkit.grade.worker``: one forked child per exercise, a time
   limit each, the reference blocked). The worker only reports what the student's code
   returned; the verdicts are reached here, against expected values this process computed
   from the references before any student code ran. An exercise scores its ``points`` when
   every test passes, else 0;
3. executes the whole notebook on a fresh Jupyter kernel in another worker, in a temporary
   working copy, with a deadline for the notebook: the row's status is ``ok``, ``error`` (a
   cell raised; the last traceback lines go to the feedback) or ``timeout``. A notebook that
   stops early still gets the points of every exercise whose cell passes the hidden tests:
   only what could not be graded scores 0.

Trust (ARCHITECTURE.md, "Trust"): nothing a notebook prints or stores is read for marks: not
its outputs, not ``lk.checks.RESULTS``, not what a kernel's ``check`` returned. Every process
that runs student code runs in a bubblewrap sandbox (``labkit.grade.sandbox``: no network, its
own PID namespace, read-only system, Python and labkit, no view of other files) with resource
limits; an exercise's function reference is absent from the process testing it; hidden random
inputs come from a secret per-run seed. Without bubblewrap the grader falls back to weaker
isolation and says so loudly (``--require-sandbox`` refuses instead).

Writes ``OUT/gradebook.csv`` (student, lab, one column per exercise, score, max_score,
status, sandbox, seconds, detail) and ``OUT/feedback/<student>.md`` (``OUT/feedback`` is rewritten on
every run), ``OUT/manual_marks.csv`` when the lab has written questions (``--manual`` merges
it back), ``OUT/shard.json`` with ``--shard K/N`` (``labkit.grade.shards.merge`` joins them),
and prints a summary table.
"""

from labkit.grade.grader import grade, grade_student
from labkit.grade.judge import ExerciseResult
from labkit.grade.report import write_summary
from labkit.grade.submissions import STATUSES, Options, StudentResult, find_submissions, student_id

__all__ = [
    "STATUSES",
    "ExerciseResult",
    "Options",
    "StudentResult",
    "find_submissions",
    "grade",
    "grade_student",
    "student_id",
    "write_summary",
]
