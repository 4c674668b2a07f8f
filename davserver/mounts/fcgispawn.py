"""FastCGI applications the server starts itself (``command``), as lighttpd's ``bin-path``.

The server makes the listening socket (a Unix socket in the abstract namespace: no file,
no path length limit) and starts ``processes`` copies of the command with it as their
standard input, which is how a FastCGI application learns where to accept (the spec's
``FCGI_LISTENSOCK_FILENO``; php-cgi, flup and fcgiwrap do so). A copy that exits is
started again (after repeated quick exits, with a growing pause); what it writes to
stderr goes to the log. Each worker process of the server runs its own copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Mapping

from davserver.runtime.affinity import spread

log = logging.getLogger("davserver.fastcgi")

STOP_GRACE = 5.0
RESTART_PAUSE_MAX = 10.0


class Spawner:
    """Starts and restarts the copies of one application."""

    def __init__(
        self, command: tuple[str, ...], processes: int, env: Mapping[str, str], who: str
    ) -> None:
        self.command = command
        self.processes = processes
        self.env = {"PATH": os.environ.get("PATH", os.defpath), **env}
        self.who = who
        self.address = f"\0davserver-fcgi-{os.getpid()}-{os.urandom(6).hex()}"
        self._sock: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._procs: set[asyncio.subprocess.Process] = set()
        self._closing = False

    async def start(self) -> None:
        """Listen, and start the copies."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.address)
        sock.listen(128)
        self._sock = sock
        self._tasks = [asyncio.create_task(self._keep(n)) for n in range(self.processes)]
        await asyncio.sleep(0)

    async def _keep(self, n: int) -> None:
        """Run copy ``n``, again and again, until the mount closes."""
        quick = 0
        while not self.closing():
            assert self._sock is not None
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command,
                    stdin=self._sock.fileno(),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as exc:
                log.error("%s: cannot start %s: %s", self.who, self.command[0], exc)
                code = None
            else:
                spread(proc.pid)
                self._procs.add(proc)
                started = asyncio.get_running_loop().time()
                await self._log_stderr(proc)
                code = await proc.wait()
                self._procs.discard(proc)
                if asyncio.get_running_loop().time() - started > 10:
                    quick = 0
            if self.closing():
                return
            quick += 1
            pause = min(RESTART_PAUSE_MAX, 0.1 * 2 ** min(quick, 8))
            log.warning("%s: process %d exited (%s): started again in %.1fs", self.who, n,
                        f"status {code}" if code is not None else "no start", pause)  # fmt: skip
            await asyncio.sleep(pause)

    def closing(self) -> bool:
        """Whether the mount is closing (no copy is started any more)."""
        return self._closing

    async def _log_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            log.warning("%s: %s", self.who, line.decode("utf-8", "replace").rstrip())

    async def close(self) -> None:
        """Stop the copies (SIGTERM, then SIGKILL after a grace) and the socket."""
        self._closing = True
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            for proc in list(self._procs):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
