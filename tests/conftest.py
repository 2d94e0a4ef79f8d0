"""Fixtures shared by several test files (use them by name or with ``pytest.mark.usefixtures``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def fresh_records(monkeypatch):
    """Empty ``labkit.checks`` records before and after the test, and no strict mode."""
    from labkit import checks

    monkeypatch.delenv(checks.STRICT_ENV_VAR, raising=False)
    from labkit.checks.notebook import FAILURES

    checks.RESULTS.clear()
    checks.SUBMITTED.clear()
    FAILURES.clear()
    yield
    checks.RESULTS.clear()
    checks.SUBMITTED.clear()
    FAILURES.clear()
