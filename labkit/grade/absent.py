"""Make labkit's reference of an exercise absent from the copy a student's process imports.

Blocking a reference in memory is not enough: ``importlib.reload``, ``inspect.getsource``,
``gc`` or a class's ``__subclasses__`` find the original again. So the grader rewrites the
*source* in that exercise's copy of labkit: the reference (a function, a class or a method)
keeps its name, signature and bases (other modules import it, subclass it), and its body
only raises, saying the exercise asks for the student's own code. The same is done for the
library code an exercise names as equivalent (``Exercise.absent``: labkit's ``UNet`` for
lab 03's residual U-Net, ``labkit.metrics.dice`` for lab 02's Dice). Nothing in that
process, its memory or its files holds the reference's code.

An exercise with an instructor's own ``test=`` keeps its reference (the test is called with
it, next to the student's code), blocked in memory only (ARCHITECTURE.md, "Trust").
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from labkit.checks.registry import Exercise, resolve

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
    exercise: Exercise, files: dict[str, bytes], roots: dict[str, Path], also: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """``{path in the copy: new source}`` with the reference's body replaced, or ``{}``.

    Args:
        exercise: the exercise under test.
        files: the snapshot (path in the copy -> bytes).
        roots: path prefix in the copy -> the real file or folder it was read from.
        also: more references to make absent ("module:qualname"): the other labs' exercise
            references, which no lab's tests need and some could stand in for this one.

    Raises:
        ValueError: the reference (or a name in ``exercise.absent``) cannot be found in the
            copy, so the grader could not make it absent.
    """
    if exercise.test is not None:
        return {}
    message = USED_MESSAGE.format(where=where_of(exercise))
    changed: dict[str, bytes] = {}
    targets = [(exercise.reference, exercise.reference_impl())]
    targets += [
        (path, resolve(path, f"exercise {exercise.id}: absent"))
        for path in (*exercise.absent, *also)
    ]
    for path, obj in targets:
        rel = _file_in_copy(obj, roots)
        if rel is None or rel not in files:
            raise ValueError(
                f"exercise {exercise.id}: the grader cannot make {path!r} absent: its source is "
                "not in the copy of labkit"
            )
        source = changed.get(rel, files[rel])
        tree = ast.parse(source)
        if not _stub(tree.body, obj.__qualname__.split("."), message):
            raise ValueError(f"exercise {exercise.id}: {path!r} not found in {rel}")
        changed[rel] = (ast.unparse(ast.fix_missing_locations(tree)) + "\n").encode("utf-8")
    return changed


def _file_in_copy(obj: object, roots: dict[str, Path]) -> str | None:
    try:
        real = Path(inspect.getsourcefile(obj) or "").resolve()
    except TypeError:
        return None
    for prefix, root in roots.items():
        root = root.resolve()
        if root.is_dir() and real.is_relative_to(root):
            return f"{prefix}/{real.relative_to(root).as_posix()}"
        if real == root:
            return prefix
    return None


def _stub(body: list[ast.stmt], qualname: list[str], message: str) -> bool:
    """Replace the definition ``qualname`` (``["Cls", "method"]``) in ``body``; found?"""
    name, rest = qualname[0], qualname[1:]
    raise_it = ast.parse(f"raise RuntimeError({message!r})").body
    found = False
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            if not rest:
                node.body, node.decorator_list, found = raise_it, [], True
        elif isinstance(node, ast.ClassDef) and node.name == name:
            if rest:
                found = _stub(node.body, rest, message) or found
            else:  # the class keeps its name and bases; building one raises
                init = ast.parse("def __init__(self, *args, **kwargs):\n    pass").body[0]
                init.body = raise_it
                node.body, found = [init], True
    return found
