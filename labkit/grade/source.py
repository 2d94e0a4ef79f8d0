"""A notebook cell's source as Python, and its top-level import statements.

Used by the grader on the lab's own (trusted) source, and by the worker on a student's
cells: student source is parsed and transformed only there, inside the sandbox and its
time limit, never in the grader.
"""

from __future__ import annotations

import ast


def python_source(source: str) -> str:
    """A cell's source as plain Python (``%magic`` and ``!shell`` lines become calls)."""
    from IPython.core.inputtransformer2 import TransformerManager  # IPython: heavy, lazy

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 (left as is: the parse will report it)
        return source


def imports_of(source: str) -> list[str]:
    """Top-level import statements of a code cell (magics turned into Python first)."""
    try:
        tree = ast.parse(python_source(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
