"""labkit.grade.absent: every course exercise's reference (function, class or method) and its
named library equivalents are stubbed out of the copy a student's process imports."""

from __future__ import annotations

import ast

import pytest
from _grading import REPO

from labkit.checks import lab_exercises, resolve
from labkit.grade.absent import USED_MESSAGE, stub_reference
from labkit.grade.judge import snapshot_sources

EXERCISES = [e for lab in ("01", "02", "03", "04", "05", "06", "07") for e in lab_exercises(lab)]


@pytest.fixture(scope="module")
def snapshot():
    files, _, roots = snapshot_sources(())
    return files, roots


def _definition(tree: ast.Module, qualname: str) -> ast.AST:
    body = tree.body
    node = None
    for part in qualname.split("."):
        node = next(
            n for n in body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part
        )  # fmt: skip
        body = node.body
    return node


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.id)
def test_the_reference_and_its_equivalents_only_raise_in_the_copy(snapshot, exercise):
    files, roots = snapshot
    assert exercise.test is None, "course exercises use probes, never an in-process test="
    changed = stub_reference(exercise, files, roots)
    targets = [exercise.reference_impl()] + [resolve(p) for p in exercise.absent]
    for obj in targets:
        (source,) = [
            text for path, text in changed.items()
            if path.endswith(obj.__module__.replace(".", "/") + ".py")
            or path.endswith(obj.__module__.replace(".", "/") + "/__init__.py")
        ]  # fmt: skip
        node = _definition(ast.parse(source), obj.__qualname__)
        body = node.body[0].body if isinstance(node, ast.ClassDef) else node.body
        if isinstance(node, ast.ClassDef):
            assert [n.name for n in node.body] == ["__init__"]
        assert len(body) == 1 and isinstance(body[0], ast.Raise)
        assert USED_MESSAGE.split("(")[0] in ast.unparse(body[0])
        # and the stubbed module still compiles (other modules import the name)
        compile(source, obj.__module__, "exec")


def _stubbed_names(changed: dict[str, bytes], module_path: str) -> set[str]:
    """Top-level functions of ``module_path`` whose body is now a single raise."""
    (source,) = [text for path, text in changed.items() if path.endswith(module_path)]
    return {
        n.name
        for n in ast.parse(source).body
        if isinstance(n, ast.FunctionDef) and len(n.body) == 1 and isinstance(n.body[0], ast.Raise)
    }


def test_the_parts_a_reference_is_built_from_are_absent_too(snapshot):
    """Red team 3, A8: ``focal_term(*prepare(...))`` *is* labkit's focal loss."""
    files, roots = snapshot
    (focal,) = [e for e in EXERCISES if e.id == "04.focal_loss"]
    stubbed = _stubbed_names(stub_reference(focal, files, roots), "losses/functional.py")
    assert {"focal_loss", "focal_term", "prepare"} <= stubbed, stubbed


def test_what_the_solution_cell_uses_stays(snapshot):
    """Lab 05's combined loss may use lab 04's ``lk.losses.focal_loss`` (its solution does):
    that function and what it is built from are kept, the rest of the reference's parts go."""
    from labkit.course.build import build_lab, exercise_cells, find_labs

    files, roots = snapshot
    (source,) = find_labs(REPO / "solutions", ["05"])
    _, _, solution = build_lab(source, notebooks_dir=REPO / "solutions")
    cell = exercise_cells(solution)["05.combined_loss"].source
    assert "lk.losses.focal_loss" in cell
    (combined,) = [e for e in EXERCISES if e.id == "05.combined_loss"]
    stubbed = _stubbed_names(
        stub_reference(combined, files, roots, allowed=cell), "losses/functional.py"
    )
    assert not {"focal_loss", "focal_term", "prepare"} & stubbed, stubbed
    assert "overlap_term" in stubbed  # the Dice part of the combined loss is still absent


def test_other_labs_references_are_absent_with_their_parts(snapshot):
    """Red team 4, A2: lab 02's ``_counts`` (a part of its Dice) made lab 07's subject Dice."""
    from labkit.grade.judge import other_labs_references

    files, roots = snapshot
    (subject,) = [e for e in EXERCISES if e.id == "07.subject_dice"]
    changed = stub_reference(subject, files, roots, other_labs_references("07"))
    assert "_counts" in _stubbed_names(changed, "exercises/lab02.py")
