"""The CPUs of the processes the server starts.

``[server] pin_cpu`` keeps a server process to one CPU (davserver/cpu.py), and a process
it starts would inherit that one CPU: a CGI script, a FastCGI application, the packing
of a git repository would then take the serving CPU from the requests while another one
sits idle. (Measured: the git packing process, at nice 10 on the server's CPU, took 77 %
of it during sequential PUTs into a repository of 10,000 files, which ran at about half
their rate; on the CPUs the server could use before it was pinned, at the full rate.)
Such a process is no thread of the server's: it shares no interpreter lock with it, and
is best left to the kernel, like every process the server does not pin.
"""

from __future__ import annotations

import contextlib
import os

_before_pinning: frozenset[int] | None = None


def remember_unpinned(cpus: set[int]) -> None:
    """Note the CPUs the process may use, before it keeps to one of them."""
    global _before_pinning
    _before_pinning = frozenset(cpus)


def unpinned() -> frozenset[int]:
    """The CPUs the process could use before it was pinned (none: it was not)."""
    return _before_pinning or frozenset()


def spread(pid: int, but: int | None = None) -> None:
    """Let the process ``pid``, which this one started, run on every CPU this one could
    use before it was pinned (nothing to do when it was not); with ``but``, on every one
    but that CPU, the one this process serves from (on all of them when there is no
    other): a helper that takes work off the serving CPU must not take its time instead."""
    if _before_pinning is not None:
        cpus = _before_pinning - {but} if but is not None else _before_pinning
        with contextlib.suppress(OSError):  # it may have ended already
            os.sched_setaffinity(pid, cpus or _before_pinning)
