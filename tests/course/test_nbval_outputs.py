"""nbval must read every output of a long cell, however many messages it sent while running.

The repository's root ``conftest.py`` gives nbval's kernel client an IOPub queue without a
limit. Here a real kernel runs a cell that sends far more messages than ZeroMQ's default
queues hold (as a long training cell's progress bars do on a slow machine): plain nbval
loses the kernel's final "idle" message and fails the cell; with the root conftest it passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
# ZeroMQ queues 1000 messages at the kernel and 1000 at the client (plus what the sockets'
# buffers absorb: 3000 still got through here); 10000 overflowed them in every run we made.
FLOOD = 10_000


def _nbval(notebook: Path, *plugins: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins]
    args += ["--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout", "300", notebook.name]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        args, cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_a_cell_that_floods_iopub_passes_with_the_root_conftest(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from IPython.display import display\n"
            f"for i in range({FLOOD}):\n"
            "    display({'text/plain': str(i)}, raw=True, display_id='bar', update=True)\n"
            "print('flooded')"
        ),
        nbformat.v4.new_code_cell("print('next cell')"),
    ]
    nbformat.write(nb, tmp_path / "flood.ipynb")

    plain = _nbval(tmp_path / "flood.ipynb")  # nbval alone: the flood is real
    assert plain.returncode == 1, plain.stdout[-2000:]
    assert "exceeded waiting for output" in plain.stdout

    fixed = _nbval(tmp_path / "flood.ipynb", "-p", "conftest")  # the root conftest.py
    assert fixed.returncode == 0, fixed.stdout[-2000:]
    assert "2 passed" in fixed.stdout
