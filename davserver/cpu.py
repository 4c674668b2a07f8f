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

The CPUs are taken in the order of the device interrupts they have handled, fewest
first (:func:`quietest_first`), so that a single process does not sit on the CPU its
disk's interrupts go to: their handlers (a write's completion, a discard's) run on that
CPU, in the process's time. On the 2-CPU test machine, whose disk interrupts all go to
CPU 1, a single process on CPU 0 served 1.3-1.5 times the 4 KiB PUTs it served on CPU 1
(GET did not differ; docs/benchmarks.md). Where the interrupts are spread evenly or
cannot be read, the order is the CPUs' (a single process stays on the CPU it started on).

A single process does not stay on a CPU that other programs take while another CPU it may
use sits idle: :class:`Follower` looks once a second and moves the whole process (loop and
threads together) to the idler CPU, which the kernel would have done for a process that
was not pinned. It moves only while it serves (an idle process loses nothing to the
others), and then stays at least :data:`HOLD` seconds: a client on the same host follows
the process that answers it (the kernel tends to wake a reader on the CPU of the thread
that wrote to it), and moving away from it only had the process hop between the CPUs every
few seconds (on the 2-CPU test machine, during a bench/run of PUTs: 13 moves in 93 s,
every other one onto the CPU that takes the disk's interrupts, where a PUT costs more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from davserver.runtime import affinity
from davserver.runtime.threads import offload

log = logging.getLogger("davserver.cpu")

OTHERS_SHARE = 0.25
"""The share of its CPU that other programs must take, two looks in a row, for the
process to move..."""
IDLE_SHARE = 0.5
"""...to a CPU it may use that was idle at least this share of the same time."""
LOOK_EVERY = 1.0
"""Seconds between two looks."""
OWN_SHARE = 0.25
"""The share of its CPU the process itself must have used in a look for the others' share
to count: a process that waits for requests has nothing to move for."""
HOLD = 60.0
"""Seconds the process stays on a CPU it moved to, crowded or not (see the module's
docstring: a crowd that follows it)."""
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def current_cpu() -> int | None:
    """The CPU the calling thread last ran on (Linux), or None where that is unknown."""
    try:
        stat = Path("/proc/thread-self/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[36])  # field 39: processor
    except (OSError, IndexError, ValueError):
        return None


def device_interrupts(text: str) -> dict[int, int]:
    """The interrupts each CPU has handled for devices (disks, network cards), from the
    text of ``/proc/interrupts``: its numbered rows, not the timer, rescheduling and other
    rows (``LOC``, ``RES``...) that every CPU takes alike."""
    lines = text.splitlines()
    if not lines:
        return {}
    cpus = [int(name[3:]) for name in lines[0].split() if name[:3] == "CPU" and name[3:].isdigit()]
    counts = dict.fromkeys(cpus, 0)
    for line in lines[1:]:
        label, colon, rest = line.partition(":")
        if not colon or not label.strip().isdigit():
            continue
        for cpu, field in zip(cpus, rest.split(), strict=False):  # then the chip's name
            if not field.isdigit():
                break
            counts[cpu] += int(field)
    return counts


def interrupts_now() -> dict[int, int]:
    """:func:`device_interrupts` of this machine now (empty where /proc cannot say)."""
    try:
        return device_interrupts(Path("/proc/interrupts").read_text(errors="replace"))
    except OSError:  # not Linux, or /proc hidden
        return {}


def quietest_first(
    allowed: AbstractSet[int], interrupts: Mapping[int, int], first: int | None = None
) -> list[int]:
    """The CPUs of ``allowed``, those that handled the fewest device ``interrupts``
    first; among equals ``first`` (when given), then the lower number."""
    return sorted(allowed, key=lambda cpu: (interrupts.get(cpu, 0), cpu != first, cpu))


def worker_order() -> list[int]:
    """The CPUs this process may use, in the order worker processes take them
    (:func:`quietest_first`). The master reads it once and hands it to every worker it
    starts: each reading its own, two workers (or one started again) could see near-equal
    CPUs in two orders and take the same one."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return quietest_first(os.sched_getaffinity(0), interrupts_now())


def pin_to_one_cpu(slot: int | None = None, order: Sequence[int] = ()) -> int | None:
    """Restrict the process to one CPU: worker ``slot`` to the slot-th of ``order`` (round
    robin; see :func:`worker_order`), a single process to the first of
    :func:`quietest_first`, where the CPU it runs on now comes first among equals. Call it
    before any thread starts (threads inherit the affinity of the thread that starts
    them).

    Returns the CPU, or None when nothing was changed: the process may run on one CPU
    only already (taskset, a container's cpuset), or the platform has no CPU affinity.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        return None
    if slot is None:
        cpu = quietest_first(allowed, interrupts_now(), current_cpu())[0]
    else:
        mine = [c for c in order if c in allowed] or sorted(allowed)
        cpu = mine[slot % len(mine)]
    affinity.remember_unpinned(allowed)  # for the processes it starts
    os.sched_setaffinity(0, {cpu})
    return cpu


@dataclass(frozen=True)
class _Look:
    """What one look saw: every CPU's busy and idle ticks (/proc/stat) and the process's
    own CPU seconds, at a moment (monotonic seconds)."""

    at: float
    busy: dict[int, int]
    idle: dict[int, int]
    own: float


def _look() -> _Look:
    busy: dict[int, int] = {}
    idle: dict[int, int] = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *fields = line.split()
            ticks = [int(f) for f in fields[:8]]
            # user nice system idle iowait irq softirq steal: what programs ran (user,
            # nice, system) against what nothing did (idle, iowait).
            cpu = int(name[3:])
            busy[cpu] = ticks[0] + ticks[1] + ticks[2]
            idle[cpu] = ticks[3] + ticks[4]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return _Look(time.monotonic(), busy, idle, usage.ru_utime + usage.ru_stime)


class Follower:
    """Keeps a process pinned by :func:`pin_to_one_cpu` on a CPU it has to itself, as far
    as the CPUs it may use (``allowed``) allow: when other programs took at least
    :data:`OTHERS_SHARE` of its CPU in each of two looks in which the process itself used
    at least :data:`OWN_SHARE` of it, while another allowed CPU was idle at least
    :data:`IDLE_SHARE` of the time, every thread of the process moves to the idlest such
    CPU (threads started later follow the thread that starts them), and ``on_move`` is
    told the new CPU. No move comes sooner than :data:`HOLD` seconds after the last."""

    def __init__(
        self, allowed: AbstractSet[int], cpu: int, on_move: Callable[[int], None] | None = None
    ) -> None:
        self.allowed = allowed
        self.cpu = cpu
        self._on_move = on_move
        self._crowded = 0  # looks in a row that found the CPU taken by others
        self._moved_at: float | None = None  # when the last move was decided (a look's time)

    async def run(self) -> None:
        """Look every :data:`LOOK_EVERY` seconds until cancelled (/proc is read on a
        worker thread); a look that fails ends the following, with a log line."""
        try:
            before = await offload(_look)
            while True:
                await asyncio.sleep(LOOK_EVERY)
                now = await offload(_look)
                target = self.verdict(before, now)
                before = now
                if target is not None:
                    await offload(self.move, target)
        except (OSError, ValueError) as exc:
            log.warning("pin_cpu: staying on CPU %d, the CPUs' load cannot be read: %s",
                        self.cpu, exc)  # fmt: skip

    def verdict(self, before: _Look, now: _Look) -> int | None:
        """The CPU to move to after these two looks, or None to stay."""
        span = (now.at - before.at) * _TICK
        if span <= 0 or self.cpu not in now.busy or self.cpu not in before.busy:
            return None
        ours = (now.own - before.own) * _TICK
        others = (now.busy[self.cpu] - before.busy[self.cpu] - ours) / span
        crowded = others >= OTHERS_SHARE and ours / span >= OWN_SHARE
        self._crowded = self._crowded + 1 if crowded else 0
        if self._crowded < 2:
            return None
        if self._moved_at is not None and now.at - self._moved_at < HOLD:
            return None
        idlest, share = None, IDLE_SHARE
        for cpu in sorted(self.allowed - {self.cpu}):
            if cpu in now.idle and cpu in before.idle:
                idle = (now.idle[cpu] - before.idle[cpu]) / span
                if idle >= share:
                    idlest, share = cpu, idle
        if idlest is not None:
            self._moved_at = now.at
            log.info(
                "moving to CPU %d: other programs took %.0f%% of CPU %d, CPU %d was %.0f%% idle",
                idlest, 100 * others, self.cpu, idlest, 100 * share,
            )  # fmt: skip
        return idlest

    def move(self, cpu: int) -> None:
        """Put every thread of the process on ``cpu``."""
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), {cpu})
        self.cpu = cpu
        self._crowded = 0
        if self._on_move is not None:
            self._on_move(cpu)
