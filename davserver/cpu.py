"""Keeping the server's threads on one CPU (``[server] pin_cpu``).

A davserver process runs Python on one core at a time (the GIL), and each request's disk
calls go from the event loop to a worker thread and back. Every system call releases the
GIL. When the workers can run on another core, a worker that wakes up takes the GIL at the
loop's next send or recv, and the loop then waits for it back: a futex and a wake-up across
cores, many times per request. On one core the other threads only run while the loop
waits, and the hand-overs cost next to nothing. Measured on 2 cores under wrk (16
connections, docs/benchmarks.md): unpinned, GET of 4 KiB made 10-14 futex calls per
request instead of 1 and ran at 0.6x the pinned rate, PROPFIND Depth 0 at 0.5x, PUT at
0.55x, PROPFIND Depth 1 of 1,000 files at 0.6x (2,000 futex calls per request); the
process pinned to the CPU it started on ran at the pinned rates. With several worker
processes (``[server] workers``), worker slot ``n`` keeps to the n-th allowed CPU, so that
they do not pile up on one.
"""

from __future__ import annotations

import os
from pathlib import Path


def current_cpu() -> int | None:
    """The CPU the calling thread last ran on (Linux), or None where that is unknown."""
    try:
        stat = Path("/proc/thread-self/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[36])  # field 39: processor
    except (OSError, IndexError, ValueError):
        return None


def pin_to_one_cpu(slot: int | None = None) -> int | None:
    """Restrict the process to one CPU: the one it runs on now, or for worker ``slot`` the
    slot-th of the CPUs it may use (round robin). Call it before any thread starts
    (threads inherit the affinity of the thread that starts them).

    Returns the CPU, or None when nothing was changed: the process may run on one CPU
    only already (taskset, a container's cpuset), or the platform has no CPU affinity.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        return None
    if slot is not None:
        cpu: int | None = sorted(allowed)[slot % len(allowed)]
    else:
        cpu = current_cpu()
    if cpu is None or cpu not in allowed:
        cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})
    return cpu
