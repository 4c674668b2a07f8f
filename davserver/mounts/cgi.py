"""CGI (RFC 3875): executable files below a folder, run once per request.

A script runs without a shell, in its own folder and process group, with the request body
streamed to its stdin and its stdout streamed back as it writes it. Its stderr goes to the
log. A script that stays silent for ``timeout`` seconds is killed (504 if it had not sent
its headers yet); one that ends without a valid header block gets 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from davserver.dav.errors import DAVError
from davserver.dav.paths import strip_query
from davserver.runtime.affinity import spread
from davserver.runtime.threads import offload

from . import DISPATCH, files, gateway
from .xsendfile import XSendfile, requested

log = logging.getLogger("davserver.cgi")

MAX_HEADER_BYTES = 64 << 10
MAX_LOCAL_REDIRECTS = 10
REAP_GRACE = 5.0
READ_CHUNK = 64 << 10
# Local redirects followed so far by the request being answered (in this task).
_redirects = contextvars.ContextVar("davserver_cgi_redirects", default=0)
_BODY_HEADERS = ("Content-Length", "Content-Type", "Transfer-Encoding")


@dataclass(frozen=True, slots=True)
class CgiSettings:
    """The options of a CGI mount (see docs/mounts.md)."""

    root: Path
    timeout: float = 30.0
    x_sendfile: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


class BadGateway(Exception):
    """The script did not answer with a valid CGI response."""


@dataclass(frozen=True, slots=True)
class Script:
    """The script a request names, and what of the path follows it."""

    full: str
    script_name: str
    path_info: str


class CgiMount:
    """Runs the executable files below ``settings.root``."""

    def __init__(self, prefix: str, settings: CgiSettings) -> None:
        self.prefix = prefix
        self.settings = settings
        self.root = ""
        self.xsendfile = XSendfile(settings.x_sendfile)
        self.base_env = {"PATH": os.environ.get("PATH", os.defpath), **settings.env}

    async def open(self) -> None:
        """Resolve the root and the X-Sendfile folders."""

        def prepare() -> str:
            real = os.path.realpath(self.settings.root)
            if not os.path.isdir(real):
                raise NotADirectoryError(f"CGI root {self.settings.root} is not a folder")
            return real

        self.root = await offload(prepare)
        await self.xsendfile.open()

    async def close(self) -> None:
        """Nothing to release: every script is waited for by its request."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run the script the path names."""
        raw = strip_query(request.raw_path)[len(self.prefix) :]
        try:
            parts = files.segments(raw)
            script = await offload(self._find_sync, parts, raw.endswith("/"))
        except DAVError as exc:
            log.info(
                "%s %s refused: %s %s", request.method, request.raw_path, exc.status, exc.reason
            )
            return exc.response()
        return await _Run(self, request, script).answer()

    def environ(self, request: web.Request, script: Script) -> dict[str, str]:
        """The script's environment: PATH, the configured variables, the meta-variables."""
        env = {**self.base_env}
        env.update(gateway.meta_variables(request, script.script_name, script.path_info))
        env["GATEWAY_INTERFACE"] = "CGI/1.1"
        if script.path_info:
            env["PATH_TRANSLATED"] = self.root + script.path_info
        env["REQUEST_URI"] = request.raw_path
        env["SCRIPT_FILENAME"] = script.full
        return env

    def _find_sync(self, parts: list[str], trailing_slash: bool) -> Script:
        """The first regular file along ``parts``; the rest of them is PATH_INFO."""
        found = files.first_file(self.root, parts, "CGI")
        if found is None:
            raise DAVError(403, "a folder is not a script")
        i, full = found
        if not os.access(full, os.X_OK):
            raise DAVError(403, "not an executable file")
        rest = parts[i + 1 :]
        path_info = "/" + "/".join(rest) + ("/" if trailing_slash else "") if rest else ""
        return Script(full, "/".join([self.prefix, *parts[: i + 1]]), path_info)


class _Watchdog:
    """Kills a script that makes no progress for ``timeout`` seconds.

    Progress is the script reading its stdin or writing its stdout. Time spent waiting on
    the client (for the request body, or for it to take the answer) does not count.
    """

    def __init__(self, timeout: float, proc: asyncio.subprocess.Process) -> None:
        self.timeout = timeout
        self.proc = proc
        self.expired = False
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._client_waits = 0

    def touch(self) -> None:
        """The script made progress."""
        self._last = self._loop.time()

    @contextlib.contextmanager
    def on_client(self) -> Iterator[None]:
        """Stop the clock while waiting on the client."""
        self._client_waits += 1
        try:
            yield
        finally:
            self._client_waits -= 1
            self.touch()

    async def run(self) -> None:
        """Sleep until the script has been silent too long, then kill it."""
        while True:
            delay = self._last + self.timeout - self._loop.time()
            if delay <= 0 and not self._client_waits:
                self.expired = True
                kill(self.proc)
                return
            await asyncio.sleep(delay if delay > 0 else self.timeout)


def kill(proc: asyncio.subprocess.Process) -> None:
    """Kill a script and whatever it started (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def parse_headers(lines: list[bytes]) -> tuple[int, str | None, list[tuple[str, str]]]:
    """Status, reason and the other header fields of a CGI header block."""
    status, reason = 200, None
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.decode("latin-1").partition(":")
        value = value.strip()
        if not sep or not gateway.is_token(name) or "\r" in value or "\x00" in value:
            raise BadGateway(f"malformed header line {line[:80]!r}")
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
                raise BadGateway(f"malformed Status {value[:80]!r}")
            status, reason = int(code), text.strip() or None
        else:
            headers.append((name, value))
    if not lines:
        raise BadGateway("no header fields")
    return status, reason, headers


class _Run:
    """One run of a script for one request."""

    def __init__(self, mount: CgiMount, request: web.Request, script: Script) -> None:
        self.mount = mount
        self.request = request
        self.script = script
        self.who = f"cgi {script.script_name}"

    async def answer(self) -> web.StreamResponse:
        """Start the script and turn what it writes into the answer."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.script.full,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=os.path.dirname(self.script.full),
                env=self.mount.environ(self.request, self.script),
                start_new_session=True,
            )
        except OSError as exc:
            log.error("%s: cannot start: %s", self.who, exc)
            return web.Response(status=502, text="502 Bad Gateway\n")
        spread(proc.pid)
        self.proc = proc
        self.watchdog = _Watchdog(self.mount.settings.timeout, proc)
        helpers = [
            asyncio.create_task(self._feed_stdin()),
            asyncio.create_task(self.watchdog.run()),
        ]
        stderr_task = asyncio.create_task(self._log_stderr())
        try:
            try:
                status, reason, headers = parse_headers(await self._read_header_lines())
            except BadGateway as exc:
                if self.watchdog.expired:
                    log.warning("%s: killed, silent for %ss", self.who, self.watchdog.timeout)
                    return web.Response(status=504, text="504 Gateway Timeout\n")
                log.warning("%s: bad answer: %s", self.who, exc)
                return web.Response(status=502, text="502 Bad Gateway\n")
            return await self._respond(status, reason, headers)
        finally:
            kill(proc)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._reap(stderr_task)

    async def _reap(self, stderr_task: asyncio.Task[None]) -> None:
        """Wait for the killed script: asyncio reports its exit only once its output
        pipes are read to the end, so what it left in stdout is read and dropped."""
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(REAP_GRACE):
                while await stdout.read(READ_CHUNK):
                    pass
                await stderr_task
                await self.proc.wait()
        except TimeoutError:
            # Only a child that left the script's process group can hold the pipes open.
            log.warning("%s: output still open %ss after the script ended", self.who, REAP_GRACE)
            stderr_task.cancel()

    async def _read_header_lines(self) -> list[bytes]:
        stdout = self.proc.stdout
        assert stdout is not None
        lines: list[bytes] = []
        total = 0
        while True:
            try:
                line = await stdout.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                raise BadGateway("the script ended before its header block did") from exc
            except asyncio.LimitOverrunError as exc:
                raise BadGateway("header line too long") from exc
            self.watchdog.touch()
            total += len(line)
            if total > MAX_HEADER_BYTES:
                raise BadGateway("header block too long")
            line = line.rstrip(b"\n").removesuffix(b"\r")
            if not line:
                return lines
            lines.append(line)

    async def _respond(
        self, status: int, reason: str | None, headers: list[tuple[str, str]]
    ) -> web.StreamResponse:
        fields = {name.lower(): value for name, value in headers}
        if requested(headers):
            await self._drain()
            base = os.path.dirname(self.script.full)
            return await self.mount.xsendfile.respond(
                self.request, base, headers, self.who, status, reason
            )
        location = fields.get("location", "")
        # "/path" alone is a local redirect; "//host/path" names another host.
        local = location.startswith("/") and not location.startswith("//")
        if local and reason is None and status == 200:
            await self._drain()
            return await self._local_redirect(location)
        if location and status == 200:
            status = 302
        response = web.StreamResponse(status=status, reason=reason)
        for name, value in headers:
            if name.lower() not in gateway.HOP_BY_HOP:
                response.headers.add(name, value)
        return await self._stream(response)

    async def _stream(self, response: web.StreamResponse) -> web.StreamResponse:
        """Send the script's output as it comes; cut the connection if the script fails."""
        stdout = self.proc.stdout
        assert stdout is not None
        with self.watchdog.on_client():
            await response.prepare(self.request)
        send = self.request.method != "HEAD"
        sent = 0
        while chunk := await stdout.read(READ_CHUNK):
            self.watchdog.touch()
            if send:
                with self.watchdog.on_client():
                    await response.write(chunk)
                sent += len(chunk)
        code = await self.proc.wait()
        short = send and response.content_length is not None and sent < response.content_length
        if code or self.watchdog.expired or short:
            log.warning(
                "%s: answer cut short (exit status %s%s)",
                self.who,
                code,
                ", timed out" if self.watchdog.expired else "",
            )
            if self.request.transport is not None:
                self.request.transport.close()
        return response

    async def _drain(self) -> None:
        """Read and drop the rest of the script's output until it ends."""
        stdout = self.proc.stdout
        assert stdout is not None
        while await stdout.read(READ_CHUNK):
            self.watchdog.touch()

    async def _local_redirect(self, location: str) -> web.StreamResponse:
        """Answer as if the client had asked for ``location`` (RFC 3875 §6.2.2)."""
        hops = _redirects.get()
        if hops >= MAX_LOCAL_REDIRECTS:
            log.warning("%s: more than %d local redirects", self.who, MAX_LOCAL_REDIRECTS)
            return web.Response(status=502, text="502 Bad Gateway\n")
        headers = {k: v for k, v in self.request.headers.items() if k not in _BODY_HEADERS}
        method = "HEAD" if self.request.method == "HEAD" else "GET"
        redirected = self.request.clone(method=method, rel_url=location, headers=headers)
        token = _redirects.set(hops + 1)
        try:
            return await self.request.app[DISPATCH](redirected)
        finally:
            _redirects.reset(token)

    async def _feed_stdin(self) -> None:
        """Copy the request body (de-chunked by aiohttp) to the script's stdin."""
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            if self.request.body_exists:
                content = self.request.content
                while True:
                    try:
                        with self.watchdog.on_client():
                            chunk = await content.readany()
                    except Exception as exc:
                        # The client went away, or the body passed max_body_size: the script
                        # must never take the cut-off body for a whole one (EOF on stdin).
                        log.info("%s: request body broken off (%s): script killed", self.who, exc)
                        kill(self.proc)
                        return
                    if not chunk:
                        break
                    stdin.write(chunk)
                    await stdin.drain()
                    self.watchdog.touch()
        except ConnectionError:
            pass  # the script stopped reading
        finally:
            stdin.close()

    async def _log_stderr(self) -> None:
        """Log what the script writes to stderr, line by line."""
        stderr = self.proc.stderr
        assert stderr is not None
        pending = b""
        while chunk := await stderr.read(8192):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > 8192:
                lines.append(pending)
                pending = b""
            for line in lines:
                log.warning("%s: %s", self.who, line.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            log.warning("%s: %s", self.who, pending.decode("utf-8", "replace"))
