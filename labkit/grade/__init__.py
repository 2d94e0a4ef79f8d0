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

Trust: nothing a notebook prints or stores is read for marks: not its outputs, not
``lk.checks.RESULTS``, not what a kernel's ``check`` returned. Workers get a stripped
environment, a private copy of labkit (and of the exercise and hidden-test modules) taken when
grading started, temporary folders of their own, no core dumps and a file-size limit; their
process groups are killed when they finish or time out. Submissions are read into memory
before any of them runs, and the gradebook and feedback are written at the end, so a
notebook that deletes or writes files cannot change another student's marks or the reports.
This is not a sandbox against a determined attacker with the grader's user rights (a daemon
that escapes its process group could still touch files): for that, grade inside a container.

Writes ``OUT/gradebook.csv`` (student, lab, one column per exercise, score, max_score,
status, seconds, detail) and ``OUT/feedback/<student>.md`` (``OUT/feedback`` is rewritten on
every run), and prints a summary table.
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
