"""The helper process that closes the descriptors of replaced files (runtime/closer.py)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from davserver.runtime import closer


def pause(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until every thread of it has stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = [
            (Path(f"/proc/{pid}/task") / tid / "stat").read_text().rsplit(")", 1)[1].split()[0]
            for tid in os.listdir(f"/proc/{pid}/task")
        ]
        if all(state in "tT" for state in states):
            return
        time.sleep(0.01)
    raise AssertionError("the helper did not stop")


def ended(read_end: int, wait: float = 0.0) -> bool:
    """Whether every write end of a pipe is closed (its read end is at EOF)."""
    ready, _, _ = select.select([read_end], [], [], wait)
    return bool(ready) and os.read(read_end, 1) == b""


def pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    return read_end, write_end


def test_without_a_helper_the_descriptor_is_closed_here() -> None:
    read_end, write_end = pipe()
    try:
        closer.close(write_end)
        assert ended(read_end)
        with pytest.raises(OSError):
            os.fstat(write_end)
    finally:
        os.close(read_end)


def test_the_helper_closes_what_it_is_handed(helper: int) -> None:
    """Held by the stopped helper, the pipe's write end stays open after the server's
    close (which returns at once, its own descriptor gone); the helper then closes it."""
    read_end, write_end = pipe()
    try:
        pause(helper)
        closer.close(write_end)
        with pytest.raises(OSError):
            os.fstat(write_end)
        assert not ended(read_end, 0.2)
        os.kill(helper, signal.SIGCONT)
        assert ended(read_end, 10)
    finally:
        os.close(read_end)


def test_a_helper_that_lags_behind_costs_no_wait(helper: int) -> None:
    """Once its socket is full, a close is the server's own again."""
    pause(helper)
    handed: list[int] = []
    try:
        while True:
            read_end, write_end = pipe()
            closer.close(write_end)
            if ended(read_end):  # not handed over: closed here
                os.close(read_end)
                break
            handed.append(read_end)
            assert len(handed) < 100_000
        assert handed  # the first ones were the helper's to close
        os.kill(helper, signal.SIGCONT)
        assert all(ended(read_end, 10) for read_end in handed)
    finally:
        for read_end in handed:
            os.close(read_end)


def test_a_helper_that_died_leaves_the_close_here(helper: int) -> None:
    os.kill(helper, signal.SIGKILL)
    assert closer._helper is not None
    closer._helper.wait(timeout=10)
    read_end, write_end = pipe()
    try:
        closer.close(write_end)
        assert ended(read_end)
    finally:
        os.close(read_end)


def test_the_helper_ends_with_its_socket_after_closing_what_it_holds(helper: int) -> None:
    read_end, write_end = pipe()
    try:
        pause(helper)
        closer.close(write_end)
        os.kill(helper, signal.SIGCONT)
        process = closer._helper
        assert process is not None
        closer.stop()
        assert process.returncode == 0
        assert ended(read_end)
        closer.close(os.dup(read_end))  # stopped: closes here, no error
    finally:
        os.close(read_end)


def test_the_helper_ignores_the_signals_meant_for_the_server(helper: int) -> None:
    """Ctrl-C and a service manager's SIGTERM reach the whole process group; the helper
    lives on until the server's end of the socket closes."""
    read_end, write_end = pipe()
    closer.close(write_end)
    assert ended(read_end, 10)  # it serves: its handlers are in place
    os.close(read_end)
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(helper, sig)
    process = closer._helper
    assert process is not None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.5)
    read_end, write_end = pipe()
    try:
        closer.close(write_end)
        assert ended(read_end, 10)
    finally:
        os.close(read_end)


def wakeups(pid: int) -> int:
    """How often the threads of process ``pid`` have gone to sleep and woken so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = (Path(f"/proc/{pid}/task") / tid / "status").read_text()
        total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


def test_a_helper_left_idle_waits_without_waking(helper: int) -> None:
    """While handed descriptors keep coming, the helper looks at its socket every few
    milliseconds rather than waiting on it (a wait there makes each send wake it, on
    another CPU); 0.1 s without one and it waits again, costing nothing while idle."""
    for _ in range(20):
        read_end, write_end = pipe()
        closer.close(write_end)
        assert ended(read_end, 10)
        os.close(read_end)
    looking = wakeups(helper)
    time.sleep(0.05)
    assert wakeups(helper) > looking  # still looking
    time.sleep(0.3)
    idle = wakeups(helper)
    time.sleep(0.5)
    assert wakeups(helper) - idle < 3
    read_end, write_end = pipe()  # and a wait that ends with the next one
    closer.close(write_end)
    assert ended(read_end, 10)
    os.close(read_end)
