"""FastCGI mounts: requests forwarded to an application (php-fpm, a Python FastCGI
server...) over a Unix or TCP socket, or to copies the server starts itself.

The request body is streamed in as FCGI_STDIN records while it arrives, the answer
streamed out as the STDOUT records come (never held whole); STDERR records go to the log.
Connections are kept open between requests, one request at a time on each. An
application that cannot be reached, or breaks the protocol, gets 502; one silent for
``timeout`` seconds, 504 (or a cut answer once its headers went out). A kept connection
the application closed meanwhile is replaced at once, so a restarted application is
reconnected to without a failed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from davserver.dav.errors import DAVError
from davserver.dav.paths import strip_query
from davserver.runtime import metrics
from davserver.runtime.threads import offload

from . import fcgiproto, files, gateway
from .cgi import BadGateway, parse_headers
from .errorpages import AppResponse
from .fcgipool import Conn, Pool, parse_address
from .fcgispawn import Spawner
from .xsendfile import XSendfile, requested

log = logging.getLogger("davserver.fastcgi")

MAX_HEADER_BYTES = 64 << 10
# Which script a path names is remembered this long (a thread hop and a few lstat calls
# saved per request); a script removed meanwhile is then the application's 404.
FOUND_TTL = 1.0
FOUND_MAX = 1024
Found = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class FastCgiSettings:
    """The options of a FastCGI mount (see docs/mounts.md)."""

    socket: str = ""
    root: Path | None = None
    index: tuple[str, ...] = ("index.php",)
    timeout: float = 30.0
    pool_size: int = 4
    x_sendfile: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    processes: int = 1


class Timeout(Exception):
    """The application made no progress for ``timeout`` seconds."""


class _Gone(Exception):
    """A kept connection turned out closed before the application read anything."""


class FastCgiMount:
    """Forwards the requests below ``prefix`` to a FastCGI application."""

    def __init__(self, prefix: str, settings: FastCgiSettings) -> None:
        self.prefix = prefix
        self.settings = settings
        self.root = ""
        self.who = f"fastcgi {prefix or '/'}"
        self.xsendfile = XSendfile(settings.x_sendfile)
        self.spawner = (
            Spawner(settings.command, settings.processes, settings.env, self.who)
            if settings.command
            else None
        )
        address = self.spawner.address if self.spawner else parse_address(settings.socket)
        self.pool = Pool(address, settings.pool_size)
        self.sendfile_base = ""
        self._found: dict[str, tuple[float, Found]] = {}

    async def open(self) -> None:
        """Resolve the folders; start the application when the server runs it."""
        if self.settings.root is not None:
            self.root = await offload(os.path.realpath, self.settings.root)
        await self.xsendfile.open()
        self.sendfile_base = self.root or await offload(os.getcwd)
        if self.spawner is not None:
            await self.spawner.start()

    async def close(self) -> None:
        """Close the kept connections; stop the application when the server runs it."""
        self.pool.close()
        if self.spawner is not None:
            await self.spawner.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request."""
        raw = strip_query(request.raw_path)[len(self.prefix) :]
        try:
            parts = files.segments(raw)
            script = await self._find(raw, parts)
        except DAVError as exc:
            log.info("%s %s refused: %s %s", request.method, request.raw_path, exc.status,
                     exc.reason)  # fmt: skip
            return exc.response()
        env = self.params(request, *script)
        for attempt in (1, 2):
            try:
                return await _Exchange(self, request, await self._connect()).run(env)
            except _Gone:
                # The application closed its kept connections (it was restarted, say):
                # the others are just as dead.
                self.pool.close()
                if attempt == 2:
                    return self._failed("bad_gateway", "the application closed the connection")
            except OSError as exc:
                return self._failed("unreachable", f"cannot connect: {exc}")
            except TimeoutError:
                return self._failed(
                    "timeout",
                    f"no connection to the application within {self.settings.timeout}s",
                    504,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find(self, raw: str, parts: list[str]) -> Found:
        """SCRIPT_NAME, PATH_INFO and SCRIPT_FILENAME of a path (see ``_find_sync``)."""
        trailing = raw.endswith("/")
        if not self.root:  # no disk to look at
            return self._find_sync(parts, trailing)
        now = asyncio.get_running_loop().time()
        known = self._found.get(raw)
        if known is not None and known[0] > now:
            return known[1]
        found = await offload(self._find_sync, parts, trailing)
        if len(self._found) >= FOUND_MAX:
            self._found.clear()
        self._found[raw] = (now + FOUND_TTL, found)
        return found

    async def _connect(self) -> Conn:
        return await self.pool.get(self.settings.timeout)

    def _failed(self, kind: str, why: str, status: int = 502) -> web.Response:
        log.warning("%s: %s", self.who, why)
        metrics.upstream_failed(self.prefix, kind)
        text = "504 Gateway Timeout\n" if status == 504 else "502 Bad Gateway\n"
        return web.Response(status=status, text=text)

    def _find_sync(self, parts: list[str], trailing_slash: bool) -> Found:
        """SCRIPT_NAME, PATH_INFO and SCRIPT_FILENAME ("" without ``root``): the first
        regular file along the path, or a folder's index file."""
        if not self.root:
            path_info = "/" + "/".join(parts) + ("/" if trailing_slash and parts else "")
            return self.prefix, path_info if parts or trailing_slash else "", ""
        found = files.first_file(self.root, parts, "FastCGI")
        if found is not None:
            i, full = found
            rest = parts[i + 1 :]
            path_info = "/" + "/".join(rest) + ("/" if trailing_slash else "") if rest else ""
            return "/".join([self.prefix, *parts[: i + 1]]), path_info, full
        full = os.sep.join([self.root, *parts])
        for name in self.settings.index:
            candidate = full + os.sep + name
            if os.path.isfile(candidate):
                return "/".join([self.prefix, *parts, name]), "", candidate
        raise DAVError(404 if self.settings.index else 403, "a folder without an index file")

    def params(
        self, request: web.Request, script_name: str, path_info: str, filename: str
    ) -> dict[str, str]:
        """The request's CGI/1.1 variables (FastCGI parameters)."""
        env = {**self.settings.env}
        env.update(gateway.meta_variables(request, script_name, path_info))
        env["GATEWAY_INTERFACE"] = "CGI/1.1"
        env["REQUEST_URI"] = request.raw_path
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if isinstance(peer, tuple):
            env["REMOTE_PORT"] = str(peer[1])
        if request.secure:
            env["HTTPS"] = "on"
            env["REQUEST_SCHEME"] = "https"
        else:
            env["REQUEST_SCHEME"] = "http"
        if filename:
            env["SCRIPT_FILENAME"] = filename
            env["DOCUMENT_ROOT"] = self.root
            if path_info:
                env["PATH_TRANSLATED"] = self.root + path_info
        return env


class _Exchange:
    """One request on one connection."""

    def __init__(self, mount: FastCgiMount, request: web.Request, conn: Conn) -> None:
        self.mount = mount
        self.request = request
        self.conn = conn
        self.timeout = mount.settings.timeout
        self.body_sent = False
        self.received = False
        self.ended = False
        self.client_gone = False
        self.input_refused = False

    async def run(self, env: dict[str, str]) -> web.StreamResponse:
        """Send the request, stream the answer back; the connection goes back to the pool
        only when everything went as it should."""
        conn = self.conn
        clean = False
        feeder: asyncio.Task[None] | None = None
        try:
            head = fcgiproto.begin() + fcgiproto.params(env.items())
            if self.request.body_exists:
                await conn.write(head)
                feeder = asyncio.create_task(self._feed())
            else:  # the request in one write
                await conn.write(head + fcgiproto.record(fcgiproto.STDIN))
            response = await self._answer()
            if feeder is not None:
                await feeder
            clean = self.ended and not self.input_refused
            return response
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if self.client_gone:
                raise ConnectionError("the client went away") from exc
            if conn.reused and not self.received and not self.body_sent:
                raise _Gone from exc
            if self.received and self.request.transport is not None:
                self.request.transport.close()  # the answer had begun: cut it
            return self.mount._failed("bad_gateway", f"connection lost: {exc}")
        finally:
            if feeder is not None and not feeder.done():
                feeder.cancel()
                with contextlib.suppress(BaseException):
                    await feeder
            if clean:
                self.mount.pool.put(conn)
            else:
                self.mount.pool.drop(conn)

    async def _feed(self) -> None:
        """Stream the request body as STDIN records, then its end. An application may
        answer without reading the body (a PHP script refusing an upload) and close the
        connection: the rest of the body is then not sent."""
        try:
            await self._send_body()
        except ConnectionError:
            self.input_refused = True

    async def _send_body(self) -> None:
        conn = self.conn
        content = self.request.content
        while True:
            try:
                chunk = await content.readany()
            except Exception as exc:
                # The client went away, or its body passed max_body_size: the
                # application must never take the cut-off body for a whole one.
                log.info("%s: request body broken off (%s)", self.mount.who, exc)
                self.client_gone = True
                conn.close()
                return
            if not chunk:
                break
            self.body_sent = True
            await conn.write(fcgiproto.stream(fcgiproto.STDIN, chunk))
        await conn.write(fcgiproto.record(fcgiproto.STDIN))

    async def _next(self) -> bytes | None:
        """The next piece of STDOUT, None at the end of the request (STDERR is logged)."""
        conn = self.conn
        while True:
            if conn.ready():
                kind, content = await conn.record()
            else:
                try:
                    async with asyncio.timeout(self.timeout):
                        kind, content = await conn.record()
                except TimeoutError as exc:
                    raise Timeout from exc
            self.received = True
            if kind == fcgiproto.STDOUT:
                if content:
                    return content
            elif kind == fcgiproto.STDERR:
                for line in content.decode("utf-8", "replace").splitlines():
                    log.warning("%s: %s", self.mount.who, line)
            elif kind == fcgiproto.END_REQUEST:
                _, protocol_status = fcgiproto.end_status(content)
                if protocol_status != fcgiproto.REQUEST_COMPLETE:
                    raise fcgiproto.ProtocolError(f"request refused ({protocol_status})")
                self.ended = True
                return None
            else:
                raise fcgiproto.ProtocolError(f"unexpected record type {kind}")

    async def _answer(self) -> web.StreamResponse:
        body: list[bytes] = []
        try:
            head, rest = await self._head()
            status, reason, headers = parse_headers(head)
            sendfile = requested(headers)
            if sendfile:
                while await self._next() is not None:
                    pass
            else:
                # What has arrived already: when it is the whole answer (a small page), it
                # goes to the client in one write, with its length.
                body.append(rest)
                while self.conn.ready() and not self.ended:
                    chunk = await self._next()
                    if chunk is not None:
                        body.append(chunk)
        except Timeout:
            hint = (
                ""
                if self.conn.reused
                else (
                    " (a new connection: is pool_size x workers above the application's processes?)"
                )
            )
            return self.mount._failed(
                "timeout", f"silent for {self.timeout}s: {self.request.raw_path}{hint}", 504
            )
        except (BadGateway, fcgiproto.ProtocolError) as exc:
            return self.mount._failed("bad_gateway", f"bad answer: {exc}")
        if sendfile:
            return await self.mount.xsendfile.respond(
                self.request, self.mount.sendfile_base, headers, self.mount.who, status, reason
            )
        if status == 200 and any(name.lower() == "location" for name, _ in headers):
            status = 302
        kept = [(k, v) for k, v in headers if k.lower() not in gateway.HOP_BY_HOP]
        if self.ended:
            whole = AppResponse(status=status, reason=reason, body=b"".join(body))
            for name, value in kept:
                if name.lower() != "content-length":
                    whole.headers.add(name, value)
            return whole
        response = web.StreamResponse(status=status, reason=reason)
        for name, value in kept:
            response.headers.add(name, value)
        return await self._stream(response, b"".join(body))

    async def _head(self) -> tuple[list[bytes], bytes]:
        """The header lines of the answer, and what of the body came with them."""
        buf = b""
        while True:
            chunk = await self._next()
            if chunk is None:
                raise BadGateway("the answer ended before its header block did")
            buf += chunk
            for sep in (b"\r\n\r\n", b"\n\n"):
                end = buf.find(sep)
                if end >= 0:
                    lines = [line.rstrip(b"\r") for line in buf[:end].split(b"\n")]
                    return lines, buf[end + len(sep) :]
            if len(buf) > MAX_HEADER_BYTES:
                raise BadGateway("header block too long")

    async def _stream(self, response: web.StreamResponse, first: bytes) -> web.StreamResponse:
        await response.prepare(self.request)
        send = self.request.method != "HEAD"
        sent = 0
        chunk: bytes | None = first
        try:
            while chunk is not None:
                if chunk and send:
                    try:
                        await response.write(chunk)
                    except ConnectionError:
                        self.client_gone = True
                        raise
                    sent += len(chunk)
                chunk = await self._next()
        except (Timeout, fcgiproto.ProtocolError) as exc:
            log.warning("%s: answer cut short: %s", self.mount.who, exc or "timed out")
            metrics.upstream_failed(
                self.mount.prefix, "timeout" if isinstance(exc, Timeout) else "bad_gateway"
            )
            if self.request.transport is not None:
                self.request.transport.close()
            return response
        declared = response.content_length
        if send and declared is not None and sent < declared:
            log.warning("%s: sent %d of %d bytes", self.mount.who, sent, declared)
            if self.request.transport is not None:
                self.request.transport.close()
        return response
