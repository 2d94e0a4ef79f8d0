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
import importlib
import inspect
import sys
import textwrap
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
    exercise: Exercise,
    files: dict[str, bytes],
    roots: dict[str, Path],
    also: tuple[str, ...] = (),
    allowed: str = "",
    provided: tuple = (),
) -> dict[str, bytes]:
    """``{path in the copy: new source}`` with the reference's body replaced, or ``{}``.

    Args:
        exercise: the exercise under test.
        files: the snapshot (path in the copy -> bytes).
        roots: path prefix in the copy -> the real file or folder it was read from.
        also: more references to make absent ("module:qualname"): the other labs' exercise
            references, which no lab's tests need and some could stand in for this one.
        allowed: the solution's exercise cell: the labkit code it uses (``lk.losses.focal_loss``
            in lab 05's combined loss), and what that is built from, stays.
        provided: the lab's other exercises' references, which the student's code gets
            under their names (lab 02's U-Net uses its ``DoubleConv``): they stay, with
            what they are built from.

    Raises:
        ValueError: the reference (or a name in ``exercise.absent``) cannot be found in the
            copy, so the grader could not make it absent.
    """
    if exercise.test is not None:
        return {}
    message = USED_MESSAGE.format(where=where_of(exercise))
    changed: dict[str, bytes] = {}
    named = [(exercise.reference, exercise.reference_impl())]
    named += [(path, resolve(path, f"exercise {exercise.id}: absent")) for path in exercise.absent]
    # and the labkit code they are built from (red team 3: focal_term + prepare *are*
    # labkit's focal loss; UpBlock a part of the U-Net named absent)
    keep = [*used_by_cell(allowed), *provided]
    # all the way down: what may run must keep every part it runs on
    keep += [obj for _, obj in parts_of(keep, {id(o) for o in keep}, depth=50)]
    seen = {id(o) for _, o in named} | {id(o) for o in keep}
    targets = [*named, *parts_of([obj for _, obj in named], seen)]
    others = [(path, resolve(path, f"exercise {exercise.id}: absent")) for path in also]
    others = [(p, o) for p, o in others if id(o) not in seen]
    seen |= {id(o) for _, o in others}
    # other labs' references and their own parts (lab 02's _counts is a Dice for lab 07)
    targets += [*others, *parts_of([obj for _, obj in others], seen, depth=1)]
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


# Never made absent: the checks and the grader themselves (the worker runs on them), and
# plumbing that computes nothing an exercise asks for.
_NEVER_ABSENT = ("labkit.checks", "labkit.grade", "labkit.device", "labkit.progress")


def parts_of(objs: list, seen: set[int], depth: int = 2) -> list[tuple[str, object]]:
    """The labkit functions and classes that ``objs``' source code names, and theirs, down
    to ``depth`` levels: ``[("module:qualname", object), ...]``.

    A reference built from labkit's parts is reached again through those parts, so they
    are made absent with it (by construction, rather than by listing each one found)."""
    found: list[tuple[str, object]] = []
    layer = list(objs)
    for _ in range(depth):
        nxt = []
        for obj in layer:
            for part in _named_in(obj):
                if id(part) not in seen:
                    seen.add(id(part))
                    found.append((f"{part.__module__}:{part.__qualname__}", part))
                    nxt.append(part)
        layer = nxt
    return found


def _named_in(obj: object) -> list:
    """labkit functions and classes named in ``obj``'s source, resolved in its module."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))  # type: ignore[arg-type]
        space = vars(sys.modules[obj.__module__])  # type: ignore[attr-defined]
    except (OSError, TypeError, KeyError, SyntaxError, AttributeError):
        return []
    out = []
    for node in ast.walk(tree):
        values: list = []
        if isinstance(node, (ast.Name, ast.Attribute)):
            values = [_lookup(node, space)]
        elif isinstance(node, ast.ImportFrom):
            values = list(_labkit_imports(node).values())
        for value in values:
            home = getattr(value, "__module__", "") or ""
            if (
                (inspect.isfunction(value) or inspect.isclass(value))
                and home.startswith("labkit.")
                and not home.startswith(_NEVER_ABSENT)
                and "<locals>" not in value.__qualname__
            ):
                out.append(value)
    return out


def used_by_cell(source: str) -> list:
    """labkit functions and classes a cell's code names (``lk.x.y``, ``labkit.x.y``,
    ``from labkit.x import y``)."""
    import labkit

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    space: dict = {"lk": labkit, "labkit": labkit}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            space.update(_labkit_imports(node))
    values = [_lookup(n, space) for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Attribute))]
    return [v for v in values if inspect.isfunction(v) or inspect.isclass(v)]


def _labkit_imports(node: ast.ImportFrom) -> dict[str, object]:
    """``from labkit.x import y as z`` -> ``{"z": labkit.x.y}`` (None where x has no y);
    ``{}`` for another package or a module that does not import."""
    if not (node.module or "").startswith("labkit"):
        return {}
    try:
        module = importlib.import_module(node.module or "")
    except ImportError:
        return {}
    return {a.asname or a.name: getattr(module, a.name, None) for a in node.names}


def _lookup(node: ast.expr, space: dict) -> object:
    """The object ``a.b.c`` names in ``space``, or None."""
    if isinstance(node, ast.Name):
        return space.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _lookup(node.value, space)
        return getattr(base, node.attr, None) if base is not None else None
    return None


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
