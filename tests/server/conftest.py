"""Fixtures of the server's own processes' tests."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from davserver.runtime import closer


@pytest.fixture
def helper() -> Iterator[int]:
    """A started helper process's PID (runtime/closer.py); stopped (or reaped, if a test
    killed it; woken, if a test stopped it) at the end."""
    pid = closer.start(0)  # the test process is not pinned: the CPU named changes nothing
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        closer.stop()
