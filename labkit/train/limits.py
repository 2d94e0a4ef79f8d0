"""The safety limit of a training run: when to stop, and how long the run will take here.

A smoke or practical run does a fixed amount of work (its epochs); the safety limit only
stops a run that *this* machine cannot finish in reasonable time (a slow laptop, a loaded
server). Two limits apply, both checked between epochs:

* the run's own ``time_budget_min`` (the profile's safety limit, per training);
* ``$LABKIT_DEADLINE`` (a Unix time), set by ``labkit course run`` for each lab's kernel, so
  that the trainings of a lab stop before the lab's own time limit would kill the cell they
  run in (the two limits nest: a training is cut and says so, it is never killed).

A run stops when one more epoch, as long as its slowest epoch so far, would end past a
limit: measured on this machine, not guessed. After the first epoch ``estimate`` says how
long the whole run will take at that pace, and whether a limit will cut it.
"""

from __future__ import annotations

import math
import os
import time

# Set by `labkit course run` in each lab's kernel and by `labkit grade` in the kernel that
# runs a submission: the Unix time by which trainings stop.
DEADLINE_ENV = "LABKIT_DEADLINE"
# The share of a lab's time limit its trainings may use: the cells after them still run.
TRAINING_SHARE = 0.8


def deadline_for(timeout_s: float) -> dict[str, str]:
    """``{"LABKIT_DEADLINE": ...}`` for a kernel that will be stopped ``timeout_s`` from now:
    its trainings end within the first ``TRAINING_SHARE`` of that time."""
    return {DEADLINE_ENV: f"{time.time() + TRAINING_SHARE * timeout_s:.0f}"}


def env_deadline() -> float | None:
    """``$LABKIT_DEADLINE`` as a Unix time, or ``None`` when unset.

    Raises:
        ValueError: it is set but not a number.
    """
    text = os.environ.get(DEADLINE_ENV, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"${DEADLINE_ENV}: expected a Unix time in seconds, got {text!r}"
        ) from None


class SafetyLimit:
    """Decides, between epochs, whether a run must stop before the next one.

    Args:
        budget_min: the run's safety limit in minutes (``None``: none).
        deadline: a Unix time by which the run must end (default: ``$LABKIT_DEADLINE``).

    Attributes:
        reason: after ``stop_now`` said yes, which limit it was, in words.
    """

    def __init__(self, budget_min: float | None, deadline: float | None = None) -> None:
        self.budget_min = budget_min
        self.deadline = env_deadline() if deadline is None else deadline
        self.reason = ""
        self._start = time.monotonic()
        self._slowest = 0.0

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._start

    def _left(self) -> tuple[float, str]:
        """(seconds left before the nearest limit, that limit in words); inf when none."""
        left, which = math.inf, ""
        if self.budget_min is not None:
            left, which = (
                60 * self.budget_min - self.elapsed,
                f"the safety limit ({self.budget_min:g} min)",
            )
        if self.deadline is not None and self.deadline - time.time() < left:
            left = self.deadline - time.time()
            which = "the lab's time limit (labkit course run --timeout)"
        return left, which

    def stop_now(self, epoch_seconds: float) -> bool:
        """After an epoch that took ``epoch_seconds``: would the next one end past a limit?"""
        self._slowest = max(self._slowest, epoch_seconds)
        left, which = self._left()
        if left < self._slowest:
            self.reason = which
            return True
        return False

    def estimate(self, epochs_done: int, epochs_total: int) -> str:
        """The run's length at the pace measured so far, and the epoch a limit would cut it at.

        Returns:
            e.g. "1 epoch(s) took 12 s on this machine: about 2.0 min for all 10 (an estimate
            from the epochs measured)", with "; the safety limit (10 min) will stop it after
            about epoch 7" when a limit will.
        """
        if epochs_done < 1:
            return ""
        pace = self.elapsed / epochs_done
        total = pace * epochs_total
        length = f"{total:.0f} s" if total < 90 else f"{total / 60:.1f} min"
        text = (
            f"{epochs_done} epoch(s) took {self.elapsed:.0f} s on this machine: about "
            f"{length} for all {epochs_total} (an estimate from the epochs measured)"
        )
        left, which = self._left()
        if which and left < pace * (epochs_total - epochs_done):
            cut = epochs_done + max(0, int(left // pace))
            text += f"; {which} will stop it after about epoch {cut} of {epochs_total}"
        return text
