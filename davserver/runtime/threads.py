"""Worker threads for blocking calls: storage backends, SQLite, CPU work.

``loop.run_in_executor`` costs about 17 µs of CPU per call on one core: a concurrent
Future with its Condition, the executor's locks and idle semaphore, a second (asyncio)
Future chained to the first, and one write to the loop's self-pipe per result, each of
which the loop then has to read back. A storage call is mostly a handful of syscalls
(about 20 µs for a small GET), so that overhead was as large as the work itself.

:class:`WorkerPool` hands each job to an idle worker through a ``SimpleQueue`` and
returns results in batches: a worker that finishes a job appends the outcome to a deque
and wakes the event loop only when no earlier wake-up is still pending, so under load
one self-pipe write delivers many results. Measured on one core with 16 concurrent
callers: about 5 µs per call. A pool serves any event loop: each result goes back to
the loop of the future it completes.

:func:`offload` is the one way for code outside a storage backend to run a blocking
or CPU-heavy call: a shared pool, started on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

_T = TypeVar("_T")


def default_threads() -> int:
    """Worker threads for a pool: the CPUs this process may run on, plus three.

    More than one, so that a slow call (a large write, a deep delete) does not hold up
    the small ones behind it and calls that wait for the disk overlap. Not many more:
    writes in one folder serialize on the folder's lock in the kernel, and extra threads
    only queue there (measured on one CPU, PUT of 4 KiB: 2-4 threads ~4.7k/s, 8 threads
    ~3.7k/s, 1 thread ~1.5k/s). Idle workers sleep.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    return min(32, cpus + 3)


def defer_to_loop() -> None:
    """Make the calling thread wait for the event loop rather than interrupt it (Linux:
    the SCHED_BATCH policy; elsewhere nothing).

    A worker thread that a job wakes would otherwise preempt the event loop at once when
    both share a CPU (``[server] pin_cpu`` keeps a process's threads on one): a context
    switch, and the interpreter lock handed to the worker and back in the middle of the
    loop's turn. A batch thread is not preferred at wake-up: it runs once the loop waits
    for events or its time slice ends, so the jobs of one turn of the loop run together
    and hand their results back together. Its share of the CPU stays the same.
    """
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):  # a sandbox may refuse it: no harm
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class WorkerPool:
    """Runs functions on worker threads for whichever event loop awaits them."""

    def __init__(self, threads: int, name: str) -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        # Outcomes waiting for their loop, and the loops a wake-up is already pending for.
        self._done: dict[asyncio.AbstractEventLoop, deque[_Outcome]] = {}
        self._waking: set[asyncio.AbstractEventLoop] = set()
        self._lock = threading.Lock()
        # Daemon threads: a pool nobody closed must not keep the process alive at exit
        # (writes are temp-file-and-rename, so an interrupted one leaves no half file).
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., _T], *args: Any
    ) -> asyncio.Future[_T]:
        """A future of ``fn(*args)`` run on a worker; await it on ``loop``.

        Like ``run_in_executor``: a job whose future is cancelled before it starts is
        skipped; one cancelled while it runs completes and its result is dropped.
        """
        future = loop.create_future()
        self._jobs.put((future, fn, args))
        return future

    def close(self) -> None:
        """Let the workers finish the jobs already queued, then stop."""
        for _ in self._threads:
            self._jobs.put(None)

    # -- worker side --------------------------------------------------------------------

    def _work(self) -> None:
        defer_to_loop()
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            self._run(*job)
            del job  # hold nothing of a finished job while waiting for the next

    def _run(
        self, future: asyncio.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        if future.cancelled():
            return
        try:
            outcome: _Outcome = (future, fn(*args), None)
        except StopIteration:  # a Future refuses StopIteration
            outcome = (future, None, RuntimeError(f"{fn!r} raised StopIteration"))
        except BaseException as exc:  # handed to the caller, as an executor does
            outcome = (future, None, exc)
        loop = future.get_loop()
        with self._lock:
            self._done.setdefault(loop, deque()).append(outcome)
            if loop in self._waking:
                return  # the pending wake-up delivers this outcome too
            self._waking.add(loop)
        try:
            loop.call_soon_threadsafe(self._deliver, loop)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            with self._lock:
                self._waking.discard(loop)
                self._done.pop(loop, None)

    # -- loop side ----------------------------------------------------------------------

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        # Take the outcomes and clear the flag together: an outcome appended after this
        # point schedules a new wake-up.
        with self._lock:
            self._waking.discard(loop)
            done = self._done.pop(loop, None)
        while done:
            future, result, exc = done.popleft()
            if future.cancelled():
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)


_shared: WorkerPool | None = None
_shared_lock = threading.Lock()


def offload(fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
    """``fn(*args)`` on the process's shared worker threads, for CPU work (parsing,
    expanding, hashing a password) and the occasional blocking call outside a storage
    backend; await the result on the running loop. Storage backends have pools of their
    own, so that such work never queues behind their disk calls."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = WorkerPool(default_threads(), "offload")
    return _shared.submit(asyncio.get_running_loop(), fn, *args)
