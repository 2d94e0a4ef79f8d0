"""The course: a lab's set-up cell (``setup``), building notebooks (``build``), running them
(``run``) and executing a notebook on a kernel (``kernel``).

Only ``setup`` is for students (``lk.setup``); the rest is for instructors. Nothing is
imported here, so ``import labkit.course.setup`` stays light (no nbclient, no nbconvert).
"""
