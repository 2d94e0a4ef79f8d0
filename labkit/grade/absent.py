"""Make labkit's reference of an exercise absent from the copy a student's process imports.

Blocking a reference in memory is not enough: ``importlib.reload``, ``inspect.getsource``,
``gc`` or a class's ``__subclasses__`` find the original again. So for an exercise whose
reference is a plain function, the grader rewrites the *source* in that exercise's copy of
labkit: the function keeps its name and signature (other modules import it), and its body
only raises, saying the exercise asks for the student's own code. Nothing in that process,
its memory or its files holds the reference's code.

Classes (``nn.Module`` exercises) and exercises with their own ``test=`` stay blocked in
memory only: their tests need labkit's module (its weights are copied into the student's),
so the reference must exist in that process (ARCHITECTURE.md, "Trust").
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from labkit.checks.registry import Exercise

USED_MESSAGE = (
    "your code calls labkit's own implementation ({where}); the exercise asks you to write "
    "it yourself"
)


def where_of(exercise: Exercise) -> str:
    """The reference's dotted name, for messages (``labkit.metrics.dice``)."""
    if isinstance(exercise.reference, str):
        return exercise.reference.replace(":", ".")
    return getattr(exercise.reference, "__qualname__", "the reference")


def stub_reference(
    exercise: Exercise, files: dict[str, bytes], roots: dict[str, Path]
) -> dict[str, bytes]:
    """``{path in the copy: new source}`` with the reference's body replaced, or ``{}``.

    Args:
        exercise: the exercise under test.
        files: the snapshot (path in the copy -> bytes).
        roots: path prefix in the copy -> the real file or folder it was read from.
    """
    if exercise.test is not None:
        return {}
    reference = exercise.reference_impl()
    if not inspect.isfunction(reference) or "." in reference.__qualname__:
        return {}
    try:
        real = Path(inspect.getsourcefile(reference) or "").resolve()
    except TypeError:
        return {}
    rel = None
    for prefix, root in roots.items():
        root = root.resolve()
        if root.is_dir() and real.is_relative_to(root):
            rel = f"{prefix}/{real.relative_to(root).as_posix()}"
        elif real == root:
            rel = prefix
    if rel is None or rel not in files:
        return {}
    tree = ast.parse(files[rel])
    message = USED_MESSAGE.format(where=where_of(exercise))
    raise_it = ast.parse(f"raise RuntimeError({message!r})").body
    found = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name == reference.__name__:
                node.body, found = raise_it, True
    if not found:
        return {}
    return {rel: (ast.unparse(ast.fix_missing_locations(tree)) + "\n").encode("utf-8")}
