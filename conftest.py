"""pytest settings for the whole repository: the tests and nbval's notebook cells."""

from __future__ import annotations

# nbval 0.11 waits at most 5 s (hard-coded, no command-line option) between two output
# messages of a cell that has already finished executing. On a loaded 2-core machine the
# outputs of a long training cell (lab 03 trains two models in one cell) have arrived later
# than that, and nbval failed a cell that ran correctly ("Timeout of 5 seconds exceeded
# waiting for output"). A minute still stops a kernel that really hangs.
NBVAL_OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT_S
