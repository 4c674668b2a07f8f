"""Several worker processes on one host: the master.

With ``[server] workers`` above one, ``davserver serve`` becomes a master that binds the
listening sockets (davserver/sockets.py), starts the workers (each a whole server, forked
from the master, sharing the sockets and the state folder; each takes a new connection
only while no other has fewer open, davserver/balance.py) and looks after them:

- a worker that dies is started again (a log line; after repeated quick deaths, with a
  growing pause);
- SIGTERM or SIGINT stops the workers the way a single server stops (each finishes the
  requests under way) and then the master;
- SIGHUP reads the configuration again: a bad one is refused with a log line and the
  workers go on; a good one starts new workers on the same sockets, and once they are
  ready the old ones are told to stop, finishing what they are doing. The listening
  addresses cannot change this way (a log line says so): that takes a restart.

The master itself serves no request and starts no thread before it forks.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import cpu, sockets
from .balance import Seat, Seats
from .config import Config, ConfigError

log = logging.getLogger("davserver")

READY_TIMEOUT = 60.0
"""Seconds a new worker has to get ready before it counts as failed."""
RESPAWN_PAUSE_MAX = 10.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1)
_PR_SET_PDEATHSIG = 1

WorkerMain = Callable[[Config, list[socket.socket], int, Seat], int]
"""What a worker runs: the configuration, its listening sockets, the file descriptor to
write one byte to once it listens and its seat in the table of open connections; its exit
code."""


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class _Worker:
    pid: int
    slot: int
    generation: int
    ready_fd: int
    seat: int
    ready: bool = False
    stopping: bool = False


@dataclass
class Master:
    """Starts and looks after the workers (see the module docstring)."""

    config: Config
    reload: Callable[[], Config]
    """Reads the configuration again (SIGHUP); raises ConfigError when it is bad."""
    worker_main: WorkerMain
    reopen_logs: Callable[[], None] = lambda: None
    """SIGUSR1: the master reopens its log files, and each worker its own."""
    worker_exited: Callable[[int], None] = lambda pid: None
    """Told the pid of every worker that exited (its live metrics leave with it)."""
    listening: list[socket.socket] = field(default_factory=list)
    """The listening sockets (systemd's or bound here): every worker accepts from all."""
    seats: Seats | None = None
    """Open connections of each worker; twice as many seats as workers, for the old and
    the new ones of a SIGHUP."""
    workers: dict[int, _Worker] = field(default_factory=dict)
    generation: int = 0
    _deaths: list[float] = field(default_factory=list)
    _failure: int = 0
    """The exit code of the first worker that failed before it was ready."""
    _cpus: list[int] = field(default_factory=list)
    """The CPUs the workers take, slot n the n-th (cpu.worker_order, read once)."""

    def bind(self) -> None:
        """The listening sockets, systemd's or bound here: one set that every worker
        accepts from."""
        count = self.count
        self.seats = Seats(2 * count)
        self.listening = sockets.from_systemd()
        if not self.listening:
            server = self.config.server
            self.listening = sockets.bind(sockets.addresses_of(server.host, server.port))

    @property
    def count(self) -> int:
        """How many workers run."""
        return self.config.server.workers or default_workers()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each listening address."""
        return [sock.getsockname()[:2] for sock in self.listening]

    def run(self, on_ready: Callable[[], None]) -> int:
        """Start the workers, call ``on_ready`` once they listen, and look after them until
        told to stop; the exit code."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        self.generation = 1
        for slot in range(self.count):
            self._spawn(slot)
        if not self._wait_ready(self.generation):
            self._stop_all()
            code = self._failure or 1
            log.error("the workers did not start (exit code %d)", code)
            return code
        on_ready()
        while True:
            info = signal.sigtimedwait(_SIGNALS, 1.0)
            self._reap()
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_signo == signal.SIGHUP:
                self._restart()
                continue
            if info.si_signo == signal.SIGUSR1:
                self.reopen_logs()
                for worker in self.workers.values():
                    if worker.ready:  # before, SIGUSR1 would still end it
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(worker.pid, signal.SIGUSR1)
                continue
            print("davserver: stopping", flush=True)
            self._stop_all()
            return 0

    # -- workers --------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        assert self.seats is not None
        taken = {w.seat for w in self.workers.values()}
        seat = min(i for i in range(self.seats.count + len(taken)) if i not in taken)
        if self.config.server.pin_cpu and not self._cpus:
            self._cpus = cpu.worker_order()  # in the master: one order for every worker
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read_fd)
                _die_with_parent(master=os.getppid())
                for sig in _SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                if self.config.server.pin_cpu:  # before the worker starts a thread
                    cpu.pin_to_one_cpu(slot, self._cpus)
                code = self.worker_main(self.config, self.listening, write_fd, self._seat(seat))
            except BaseException:
                log.exception("a worker failed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        self.workers[pid] = _Worker(pid, slot, self.generation, read_fd, seat)

    def _seat(self, index: int) -> Seat:
        """Seat ``index`` of the table (past its end: one of a table of its own, which
        never happens unless workers pile up faster than they are reaped)."""
        assert self.seats is not None
        if index < self.seats.count:
            return self.seats.seat(index)
        return Seats(1).seat(0)

    def _forget(self, pid: int) -> _Worker | None:
        """The worker ``pid`` has exited: no longer counted, its seat vacant."""
        worker = self.workers.pop(pid, None)
        self.worker_exited(pid)
        if worker is not None and self.seats is not None and worker.seat < self.seats.count:
            self.seats.vacate(worker.seat)
        return worker

    def _wait_ready(self, generation: int) -> bool:
        """Wait until every worker of ``generation`` is ready (False: one failed)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            waiting = [
                w for w in self.workers.values() if w.generation == generation and not w.ready
            ]
            if not waiting:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([w.ready_fd for w in waiting], [], [], min(left, 0.5))
            for worker in waiting:
                if worker.ready_fd in readable:
                    if not os.read(worker.ready_fd, 1):  # it exited before it was ready
                        self._reap_one(worker.pid, wait=True)
                        return False
                    worker.ready = True
                    os.close(worker.ready_fd)
            if any(self._reap_one(w.pid) for w in waiting if not w.ready):
                return False

    def _reap_one(self, pid: int, *, wait: bool = False) -> bool:
        """Whether the worker ``pid`` has exited (it is then forgotten); ``wait``: it is
        exiting, wait for it."""
        status = None
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, 0 if wait else os.WNOHANG)
            if done == 0:
                return False
        worker = self._forget(pid)
        if worker is not None and not worker.ready:
            with contextlib.suppress(OSError):
                os.close(worker.ready_fd)
            if status is not None and not self._failure:
                self._failure = max(1, os.waitstatus_to_exitcode(status))
        return True

    def _reap(self) -> None:
        """Collect the workers that exited; start again those that were not told to stop."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._forget(pid)
            if worker is None or worker.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d (slot %d) exited (%s): starting another", pid, worker.slot,
                        f"signal {-code}" if code < 0 else f"code {code}")  # fmt: skip
            self._pause_after_death()
            self._spawn(worker.slot)

    def _pause_after_death(self) -> None:
        """Workers that keep dying at once get started again less and less often."""
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < 60] + [now]
        if len(self._deaths) > 3:
            time.sleep(min(RESPAWN_PAUSE_MAX, 0.5 * 2 ** (len(self._deaths) - 3)))

    def _restart(self) -> None:
        """SIGHUP: new workers with the configuration read again, then the old ones go."""
        try:
            config = self.reload()
        except (ConfigError, OSError) as exc:
            log.error("SIGHUP: configuration refused, the workers go on: %s", exc)
            return
        server, new = self.config.server, config.server
        if (new.host, new.port) != (server.host, server.port) or (new.workers or 0) != (
            server.workers or 0
        ):
            log.warning(
                "SIGHUP: listening addresses and the number of workers change only with a "
                "restart; the rest of the new configuration is used"
            )
            config = dataclasses.replace(
                config,
                server=dataclasses.replace(
                    new, host=server.host, port=server.port, workers=server.workers
                ),
            )
        old = [w for w in self.workers.values() if not w.stopping]
        self.config = config
        self.generation += 1
        for slot in range(self.count):
            self._spawn(slot)
        if not self._wait_ready(self.generation):
            log.error("SIGHUP: the new workers did not start; the old ones go on")
            for worker in [w for w in self.workers.values() if w.generation == self.generation]:
                worker.stopping = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
            return
        for worker in old:
            worker.stopping = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        log.info("SIGHUP: %d new workers serve; the old ones finish their requests", self.count)

    def _stop_all(self) -> None:
        """SIGTERM to every worker, then wait for them (they finish their requests)."""
        for worker in self.workers.values():
            worker.stopping = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.server.shutdown_timeout + 10
        while self.workers and time.monotonic() < deadline:
            for pid in list(self.workers):
                self._reap_one(pid)
            time.sleep(0.05)
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._reap_one(pid)


def _die_with_parent(master: int) -> None:
    """Have the kernel kill this worker when the master dies (Linux), so that a master
    killed outright leaves no worker behind (and exit at once if it already has)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != master:
        os._exit(1)
