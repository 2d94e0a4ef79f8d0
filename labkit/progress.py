"""Ending a ``tqdm.auto`` progress bar so that it shows what happened, and reads right.

tqdm's notebook bar turns red ("danger") when it closes short of its total, which is right
for a crash and wrong for a planned early stop (patience): that is a success, so the bar
ends green and full at the count it really reached (its total becomes that count), with a
description that says why. A run cut by a safety limit did not do its work: its bar stays
short and red, and says so. The same words appear in the console bar.

The bars of one pass over batches (``batch_bar``: train, val, evaluate) do not stay on a
console. tqdm draws a bar at most every ``mininterval`` seconds and closes such a bar without
drawing it again, so an executed notebook saved to disk kept the last state drawn, e.g.
"val 2/3" for a pass that finished; ``drawn_when_closed`` draws the final state first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def batch_bar(batches: Any, desc: str, show: bool) -> Any:
    """A bar for one pass over ``batches`` (its length, when it has one), advanced by hand with
    ``update()`` and closed by ``drawn_when_closed``; it leaves no line on a console."""
    from tqdm.auto import tqdm

    try:
        total = len(batches)
    except TypeError:  # an iterable without a length
        total = None
    return tqdm(total=total, desc=desc, leave=False, disable=not show)


@contextlib.contextmanager
def drawn_when_closed(bar: Any) -> Iterator[Any]:
    """Close ``bar`` when the block ends, its final state drawn first: ``n/n`` for a pass that
    finished; where it stopped, and red in a notebook, when the block raised."""
    try:
        yield bar
    finally:
        if not bar.disable:
            bar.refresh()
        bar.close()


def end_bar(bar: Any, description: str, *, success: bool) -> None:
    """Close ``bar`` with ``description``; a ``success`` that ended early ends full.

    Args:
        bar: a ``tqdm.auto.tqdm`` (console or notebook widget; a disabled one is just closed).
        description: what happened, e.g. "epochs: stopped early after 5 of 10".
        success: ``True`` for a run that ended as planned (completed, early stopping).
    """
    if bar.disable:
        bar.close()
        return
    bar.set_description_str(description, refresh=False)
    if success and bar.total and bar.n < bar.total:
        n, start = bar.n, bar.start_t
        bar.reset(total=n)  # the widget's maximum too (ipywidgets 7 and 8)
        bar.start_t = start  # keep the real elapsed time
        bar.update(n)
    bar.close()
