"""Every command's help is written for a student: a description, help on every option,
no reStructuredText markup and no internal module or class names. Checked over the whole
parser tree, so a new command or option is held to it too."""

from __future__ import annotations

import argparse
import re

import pytest

from labkit.cli import build_parser, main

# `labkit grade` and its subcommands have their own owner and their own help review.
NOT_HERE = {"grade"}
INTERNAL = re.compile(r"``|labkit\.[a-z_]+\.|REPORT_SETTINGS|Profile\.|CLITraining|the issue")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name in NOT_HERE:
                    continue
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(build_parser()))


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_is_written_for_a_student(path):
    parser = COMMANDS[path]
    assert parser.description, f"labkit {' '.join(path)}: no description"
    text = parser.format_help()
    assert not INTERNAL.search(text), f"labkit {' '.join(path)}: {INTERNAL.search(text)[0]!r}"
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"labkit {' '.join(path)} {action.option_strings[0]}: no help"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--model", "unet", "--epochs", "0"], "--epochs: expected a whole number of 1"),
        (["train", "--model", "unet", "--size", "0"], "--size: expected a whole number of 1"),
        (["train", "--model", "unet", "--batch-size", "-2"], "--batch-size: expected a whole"),
        (["train", "--model", "unet", "--lr", "nan"], "--lr: expected a number above 0"),
        (["train", "--model", "unet", "--epochs", "-3"], "--epochs: expected a whole number"),
        (["train", "--model", "unet9"], "--model: invalid choice: 'unet9'"),
        (["evaluate", "x.pt", "--threshold", "2"], "--threshold: expected a number from 0 to 1"),
        (["course", "run", "--timeout", "0"], "--timeout: expected a number above 0"),
        (["course", "plan", "--labs", "two"], "--labs: expected lab numbers separated by commas"),
        (["data", "phantom", "out", "--n", "0"], "--n: expected a whole number of 1 or more"),
        (["bench", "--steps", "0"], "--steps: expected a whole number of 1 or more"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option_before_any_work(argv, expected, capsys):
    code = main(argv)  # argparse's exit code, returned (the console script exits with it)
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert "Traceback" not in err and "departs" not in err  # nothing ran before the error


@pytest.mark.parametrize("action", ["merge", "secret"])
def test_grade_merge_and_secret_have_their_own_help(action, capsys):
    """`merge` and `secret` are words in grade's positional arguments: their --help must not
    print grade's whole help (a new user met that)."""
    assert main(["grade", action, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: labkit grade {action}") and "example:" in out
    assert "folder of submitted" not in out and not INTERNAL.search(out)


@pytest.mark.parametrize("path", [("data",), ("course",)])
def test_examples_are_one_per_line(path, capsys):
    text = COMMANDS[path].format_help()
    examples = text.split("examples:", 1)[1].strip().splitlines()
    assert len(examples) >= 2 and all(line.strip().startswith("labkit ") for line in examples)
