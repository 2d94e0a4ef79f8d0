"""Bound over labkit (and the instructor's exercise modules) in every site-packages a
sandboxed process sees: ``import labkit`` from there fails. The process's own prepared copy
comes first on its path. See ``labkit.grade.sandbox``."""

raise ImportError("this package is not available inside labkit's grading sandbox")
