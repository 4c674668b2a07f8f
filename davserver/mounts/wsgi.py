"""A WSGI application (PEP 3333) mounted at a prefix, run in its own thread pool.

The application runs in a worker thread, so a slow view never blocks the event loop. A list
or tuple answer goes back in one piece; any other iterable is streamed as it yields, each
chunk handed to the event loop and written before the next is asked for (so a slow client
holds the application back instead of filling memory). ``close()`` is always called.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from aiohttp import web
from multidict import CIMultiDict

from davserver.dav.paths import strip_query
from davserver.runtime.threads import WorkerPool, offload

from . import apploader, gateway
from .errorpages import AppResponse
from .wsgiio import Errors, Input
from .xsendfile import XSendfile, requested

log = logging.getLogger("davserver.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WsgiApp = Callable[..., Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class WsgiSettings:
    """The options of a WSGI mount (see docs/mounts.md)."""

    app: str
    pythonpath: tuple[Path, ...] = ()
    threads: int = 8
    x_sendfile: tuple[Path, ...] = ()


def load_app(spec: str, pythonpath: tuple[Path, ...]) -> WsgiApp:
    """Import the application ``package.module:callable``."""
    return cast(WsgiApp, apploader.load("WSGI", spec, pythonpath))


class AppError(Exception):
    """The application broke the WSGI protocol."""


@dataclass(slots=True)
class _Whole:
    """An answer known entirely before anything was sent."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(slots=True)
class _Sendfile:
    """The application named files for the server to send."""

    status: str
    headers: list[tuple[str, str]]


def _check_status(status: object) -> tuple[int, str]:
    if not isinstance(status, str) or len(status) < 4 or status[3] != " ":
        raise AppError(f"bad status {status!r}")
    code = status[:3]
    if not code.isdigit() or not 100 <= int(code) <= 599:
        raise AppError(f"bad status {status!r}")
    return int(code), status[4:]


def _check_headers(headers: object) -> list[tuple[str, str]]:
    if type(headers) is not list:
        raise AppError("response headers must be a list")
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise AppError(f"bad response header {item!r}")
        name, value = item
        if not isinstance(name, str) or not gateway.is_token(name):
            raise AppError(f"bad response header name {name!r}")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise AppError(f"bad value of response header {name}")
        if name.lower() in gateway.HOP_BY_HOP:
            raise AppError(f"hop-by-hop response header {name}")
    return headers


class _Call:
    """One call of the application: start_response, write() and the response iterable.

    ``run`` executes in the application's thread; the writes it makes are carried out on
    the event loop, one at a time.
    """

    def __init__(self, app: WsgiApp, request: web.Request, environ: dict[str, Any]) -> None:
        self.app = app
        self.request = request
        self.environ = environ
        self.loop = asyncio.get_running_loop()
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.response: web.StreamResponse | None = None
        self.sent = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 start_response."""
        if exc_info is not None:
            try:
                if self.response is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AppError("start_response called twice without exc_info")
        _check_status(status)
        self.status, self.headers = status, _check_headers(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 write(): send ``data`` now (headers first, the first time)."""
        if not isinstance(data, bytes):
            raise AppError(f"body chunks must be bytes, not {type(data).__name__}")
        if self.status is None:
            raise AppError("write() before start_response")
        if data or self.response is None:
            asyncio.run_coroutine_threadsafe(self._send(data), self.loop).result()

    async def _send(self, data: bytes) -> None:
        response = self.response
        if response is None:
            assert self.status is not None
            code, reason = _check_status(self.status)
            response = web.StreamResponse(status=code, reason=reason)
            for name, value in self.headers:
                response.headers.add(name, value)
            self.response = response
            await response.prepare(self.request)
        if data and self.request.method != "HEAD":
            await response.write(data)
            self.sent += len(data)

    def _sendfile(self) -> _Sendfile | None:
        if self.status is not None and requested(self.headers):
            return _Sendfile(self.status, self.headers)
        return None

    def run(self) -> _Whole | _Sendfile | None:
        """Call the application; None when the answer was streamed."""
        result = self.app(self.environ, self.start_response)
        try:
            if type(result) in (list, tuple) and self.response is None:
                if self.status is None:
                    raise AppError("the application returned without calling start_response")
                body = b"".join(result)
                return self._sendfile() or _Whole(self.status, self.headers, body)
            for chunk in result:
                if not isinstance(chunk, bytes):
                    raise AppError(f"body chunks must be bytes, not {type(chunk).__name__}")
                if not chunk:
                    continue
                if self.response is None:
                    sendfile = self._sendfile()
                    if sendfile is not None:
                        return sendfile
                self.write(chunk)
            if self.response is None:
                if self.status is None:
                    raise AppError("the application returned without calling start_response")
                return self._sendfile() or _Whole(self.status, self.headers, b"")
            return None
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _native(value: str) -> str:
    """A header value as PEP 3333 wants it: its bytes, decoded as latin-1."""
    return value if value.isascii() else value.encode("utf-8", "surrogateescape").decode("latin-1")


class WsgiMount:
    """Serves a WSGI application below ``prefix``."""

    def __init__(self, prefix: str, settings: WsgiSettings) -> None:
        self.prefix = prefix
        self.settings = settings
        self.app: WsgiApp | None = None
        self.pool: WorkerPool | None = None
        self.xsendfile = XSendfile(settings.x_sendfile)
        self.who = f"wsgi {settings.app}"
        self._sendfile_base = ""

    async def open(self) -> None:
        """Start the thread pool and import the application in it."""
        loop = asyncio.get_running_loop()
        name = "wsgi" + self.prefix.replace("/", "-")
        self.pool = WorkerPool(self.settings.threads, name)
        spec, path = self.settings.app, self.settings.pythonpath
        self.app = await self.pool.submit(loop, load_app, spec, path)
        self._sendfile_base = str(path[0]) if path else await offload(os.getcwd)
        await self.xsendfile.open()

    async def close(self) -> None:
        """Stop the thread pool (the server has already let the requests under way end)."""
        if self.pool is not None:
            self.pool.close()

    def environ(self, request: web.Request) -> dict[str, Any]:
        """The PEP 3333 environ of a request."""
        raw = strip_query(request.raw_path)[len(self.prefix) :]
        path_info = unquote_to_bytes(raw).decode("latin-1") if "%" in raw else raw
        env: dict[str, Any] = {
            k: _native(v)
            for k, v in gateway.meta_variables(request, self.prefix, path_info).items()
        }
        env["PATH_INFO"] = path_info
        env["wsgi.version"] = (1, 0)
        env["wsgi.url_scheme"] = request.scheme
        env["wsgi.input"] = Input(request.content, asyncio.get_running_loop(), request.body_exists)
        env["wsgi.errors"] = Errors(log, self.who)
        env["wsgi.multithread"] = True
        env["wsgi.multiprocess"] = False
        env["wsgi.run_once"] = False
        env["wsgi.input_terminated"] = True
        return env

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run the application for one request in the thread pool."""
        assert self.app is not None
        call = _Call(self.app, request, self.environ(request))
        assert self.pool is not None
        try:
            # In the request's context: its log lines (wsgi.errors) carry its request id.
            context = contextvars.copy_context()
            outcome = await self.pool.submit(call.loop, context.run, call.run)
        except ConnectionError:
            raise
        except Exception:
            log.exception("%s: %s %s failed", self.who, request.method, request.raw_path)
            if call.response is None:
                return web.Response(status=500, text="500 Internal Server Error\n")
            return self._cut(request, call.response)
        if outcome is None:
            assert call.response is not None
            declared = call.response.content_length
            if request.method != "HEAD" and declared is not None and call.sent < declared:
                log.warning("%s: sent %d of %d bytes", self.who, call.sent, declared)
                return self._cut(request, call.response)
            return call.response
        if isinstance(outcome, _Sendfile):
            code, reason = _check_status(outcome.status)
            return await self.xsendfile.respond(
                request, self._sendfile_base, outcome.headers, self.who, code, reason
            )
        return self._whole(request, outcome)

    @staticmethod
    def _cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """End a half-sent answer by closing the connection, so the client sees it cut."""
        if request.transport is not None:
            request.transport.close()
        return response

    @staticmethod
    def _whole(request: web.Request, whole: _Whole) -> AppResponse:
        code, reason = _check_status(whole.status)
        headers = CIMultiDict(whole.headers)
        if request.method != "HEAD":
            headers.popall("Content-Length", None)
        return AppResponse(status=code, reason=reason, body=whole.body, headers=headers)
