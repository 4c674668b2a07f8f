"""ASGI 3 applications (Starlette, FastAPI, Django's ASGI handler...) served in-process:
HTTP with bodies streamed both ways, WebSockets, and the lifespan protocol.

The application runs on the server's event loop, as under uvicorn: a request body reaches
it piece by piece through ``receive`` as the client sends it, and each ``send`` of a body
piece is written to the client before it returns, so a slow client holds the application
back instead of filling memory. ``root_path`` is the mount's path and ``path`` the whole
decoded path, as the specification says.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from davserver.config import ConfigError
from davserver.dav.paths import strip_query
from davserver.runtime import metrics
from davserver.runtime.threads import offload

from . import apploader, gateway
from .errorpages import AppResponse
from .xsendfile import XSendfile, requested

log = logging.getLogger("davserver.asgi")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ASGI = {"version": "3.0", "spec_version": "2.4"}
LIFESPAN_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class AsgiSettings:
    """The options of an ASGI mount (see docs/mounts.md)."""

    app: str
    pythonpath: tuple[Path, ...] = ()
    x_sendfile: tuple[Path, ...] = ()


class AppError(Exception):
    """The application broke the ASGI protocol."""


class _Lifespan:
    """The lifespan protocol: start-up before the first request, shutdown at the end.
    An application that raises at once does not use it (as uvicorn's "auto")."""

    def __init__(self, app: AsgiApp, who: str, state: dict[str, Any]) -> None:
        self.app = app
        self.who = who
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[str | None] = loop.create_future()
        self.stopped: asyncio.Future[str | None] = loop.create_future()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Start the application's lifespan; ConfigError if its start-up failed."""
        self.task = asyncio.create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        failure = await asyncio.wait_for(self.started, LIFESPAN_TIMEOUT)
        if failure is not None:
            raise ConfigError(f"{self.who}: start-up failed: {failure}")

    async def shutdown(self) -> None:
        """Tell the application the server stops, and wait for it."""
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        try:
            failure = await asyncio.wait_for(self.stopped, LIFESPAN_TIMEOUT)
        except TimeoutError:
            failure = "no answer"
        if failure is not None:
            log.warning("%s: shutdown failed: %s", self.who, failure)
        await asyncio.wait([self.task], timeout=LIFESPAN_TIMEOUT)

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self.started.set_result(None)
        elif kind == "lifespan.startup.failed":
            self.started.set_result(str(message.get("message", "")) or "(no message)")
        elif kind == "lifespan.shutdown.complete":
            self.stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            self.stopped.set_result(str(message.get("message", "")) or "(no message)")

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI, "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self._send)
        except Exception as exc:
            if not self.started.done():
                log.info("%s: no lifespan (%s: %s)", self.who, type(exc).__name__, exc)
            else:
                log.exception("%s: lifespan failed", self.who)
        for future in (self.started, self.stopped):
            if not future.done():
                future.set_result(None)


class AsgiMount:
    """Serves an ASGI application below ``prefix``."""

    def __init__(self, prefix: str, settings: AsgiSettings) -> None:
        self.prefix = prefix
        self.settings = settings
        self.who = f"asgi {settings.app}"
        self.app: AsgiApp | None = None
        self.state: dict[str, Any] = {}
        self.xsendfile = XSendfile(settings.x_sendfile)
        self.sendfile_base = ""
        self._lifespan: _Lifespan | None = None

    async def open(self) -> None:
        """Import the application and run its start-up."""
        spec, path = self.settings.app, self.settings.pythonpath
        self.app = cast(AsgiApp, await offload(apploader.load, "ASGI", spec, path))
        self.sendfile_base = str(path[0]) if path else await offload(os.getcwd)
        await self.xsendfile.open()
        self._lifespan = _Lifespan(self.app, self.who, self.state)
        await self._lifespan.startup()

    async def close(self) -> None:
        """Run the application's shutdown."""
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    def scope(self, request: web.Request, kind: str) -> Scope:
        """The connection scope of a request (``http`` or ``websocket``)."""
        raw = strip_query(request.raw_path)
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport else None
        sock = transport.get_extra_info("sockname") if transport else None
        scheme = request.scheme if kind == "http" else ("wss" if request.secure else "ws")
        return {
            "type": kind,
            "asgi": ASGI,
            "http_version": f"{request.version.major}.{request.version.minor}",
            "method": request.method,
            "scheme": scheme,
            "path": unquote(raw) if "%" in raw else raw,
            "raw_path": raw.encode("latin-1", "replace"),
            "query_string": gateway.query_string(request.raw_path).encode("latin-1", "replace"),
            "root_path": self.prefix,
            "headers": [(k.lower(), v) for k, v in request.raw_headers],
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
            "state": dict(self.state),
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run the application for one request (or one WebSocket)."""
        assert self.app is not None
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and request.method == "GET":
            socket = _WebSocket(self, request)
            return await socket.run(self.app)
        return await _Http(self, request).run(self.app)

    def failed(self, request: web.Request, kind: str) -> None:
        """Log an application's failure with its traceback (call it in ``except``)."""
        log.exception("%s: %s %s failed", self.who, request.method, request.raw_path)
        metrics.upstream_failed(self.prefix, kind)


class _Http:
    """One HTTP request: ``receive`` and ``send`` of the application."""

    def __init__(self, mount: AsgiMount, request: web.Request) -> None:
        self.mount = mount
        self.request = request
        self.body_done = False
        self.disconnected = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.response: web.StreamResponse | None = None
        self.sendfile = False
        self.sent = 0
        self.whole: bytes | None = None
        """The body of an answer sent in one message: it goes out with its headers."""
        self.complete = asyncio.Event()

    async def run(self, app: AsgiApp) -> web.StreamResponse:
        try:
            await app(self.mount.scope(self.request, "http"), self.receive, self.send)
        except ConnectionError:
            raise
        except Exception:
            self.mount.failed(self.request, "exception")
            if self.response is None and self.whole is None:
                return web.Response(status=500, text="500 Internal Server Error\n")
            if not self.complete.is_set():
                return self._cut()
            # The answer was whole (Starlette sends its 500 page, then raises again for
            # the server's log): it stands.
            return self.response or self._whole()
        finally:
            self.complete.set()
        if self.sendfile:
            return await self.mount.xsendfile.respond(
                self.request, self.mount.sendfile_base, self.headers, self.mount.who, self.status
            )
        if not self.status:
            log.error("%s: %s %s: no answer", self.mount.who, self.request.method,
                      self.request.raw_path)  # fmt: skip
            metrics.upstream_failed(self.mount.prefix, "exception")
            return web.Response(status=500, text="500 Internal Server Error\n")
        if self.response is None:  # the body in one message (or none): one write
            return self._whole()
        assert self.response is not None
        declared = self.response.content_length
        if self.request.method != "HEAD" and declared is not None and self.sent < declared:
            log.warning("%s: sent %d of %d bytes", self.mount.who, self.sent, declared)
            return self._cut()
        return self.response

    def _whole(self) -> AppResponse:
        """The answer whose body came in one message, sent with its headers at once."""
        headers = CIMultiDict(self.headers)
        if self.request.method != "HEAD":
            headers.popall("Content-Length", None)
        return AppResponse(status=self.status, body=self.whole, headers=headers)

    def _cut(self) -> web.StreamResponse:
        """End a half-sent answer by closing the connection."""
        if self.request.transport is not None:
            self.request.transport.close()
        assert self.response is not None
        return self.response

    async def receive(self) -> Message:
        """The next piece of the body; once it is all read, ``http.disconnect`` when the
        answer is complete or the client gone."""
        if not self.body_done and not self.request.body_exists:
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if not self.body_done:
            try:
                chunk = await self.request.content.readany()
            except Exception as exc:  # the client went away, or the body was too large
                log.info("%s: request body broken off (%s)", self.mount.who, exc)
                self.body_done = self.disconnected = True
                return {"type": "http.disconnect"}
            if chunk:
                return {"type": "http.request", "body": chunk, "more_body": True}
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if not self.disconnected:
            await self.complete.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """``http.response.start`` and ``http.response.body``."""
        kind = message.get("type")
        if kind == "http.response.start":
            if self.status:
                raise AppError("http.response.start sent twice")
            status = message.get("status")
            if not isinstance(status, int) or not 100 <= status <= 599:
                raise AppError(f"bad status {status!r}")
            self.status = status
            for name, value in message.get("headers", ()):
                key, text = bytes(name).decode("latin-1"), bytes(value).decode("latin-1")
                if not gateway.is_token(key) or "\r" in text or "\n" in text:
                    raise AppError(f"bad response header {key!r}")
                if key.lower() not in gateway.HOP_BY_HOP:
                    self.headers.append((key, text))
            self.sendfile = requested(self.headers)
        elif kind == "http.response.body":
            if not self.status:
                raise AppError("http.response.body before http.response.start")
            if self.complete.is_set():
                raise AppError("http.response.body after the last one")
            body = message.get("body", b"")
            last = not message.get("more_body", False)
            if last:
                self.complete.set()
            if self.sendfile:
                return
            if self.response is None:
                if last:
                    self.whole = bytes(body)
                    return
                await self._prepare()
            if body and self.request.method != "HEAD":
                assert self.response is not None
                await self.response.write(body)
                self.sent += len(body)
        else:
            raise AppError(f"unexpected message {kind!r}")

    async def _prepare(self) -> None:
        response = web.StreamResponse(status=self.status)
        for name, value in self.headers:
            response.headers.add(name, value)
        self.response = response
        await response.prepare(self.request)


class _WebSocket:
    """One WebSocket: the handshake once the application accepts, then its messages."""

    def __init__(self, mount: AsgiMount, request: web.Request) -> None:
        self.mount = mount
        self.request = request
        self.ws: web.WebSocketResponse | None = None
        self.connected = False
        self.closed = False

    async def run(self, app: AsgiApp) -> web.StreamResponse:
        scope = self.mount.scope(self.request, "websocket")
        offered = self.request.headers.get("Sec-WebSocket-Protocol", "")
        scope["subprotocols"] = [p.strip() for p in offered.split(",") if p.strip()]
        try:
            await app(scope, self.receive, self.send)
        except ConnectionError:
            raise
        except Exception:
            self.mount.failed(self.request, "exception")
            if self.ws is None:
                return web.Response(status=500, text="500 Internal Server Error\n")
            await self.ws.close(code=1011)
            return self.ws
        if self.ws is None:
            # Closed (or returned) before accepting: the handshake is refused.
            return web.Response(status=403, text="403 Forbidden\n")
        if not self.ws.closed:
            await self.ws.close()
        return self.ws

    async def receive(self) -> Message:
        """``websocket.connect`` first, then the client's messages, then its close."""
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        if self.ws is None:
            raise AppError("receive() before websocket.accept")
        if self.closed:
            return {"type": "websocket.disconnect", "code": self.ws.close_code or 1005}
        msg = await self.ws.receive()
        if msg.type == WSMsgType.TEXT:
            return {"type": "websocket.receive", "text": msg.data}
        if msg.type == WSMsgType.BINARY:
            return {"type": "websocket.receive", "bytes": msg.data}
        self.closed = True
        code = self.ws.close_code or (msg.data if msg.type == WSMsgType.CLOSE else 1005)
        return {"type": "websocket.disconnect", "code": code}

    async def send(self, message: Message) -> None:
        """``websocket.accept``, ``websocket.send`` and ``websocket.close``."""
        kind = message.get("type")
        if kind == "websocket.accept":
            if self.ws is not None:
                raise AppError("websocket.accept sent twice")
            sub = message.get("subprotocol")
            ws = web.WebSocketResponse(protocols=(sub,) if sub else ())
            for name, value in message.get("headers", ()):
                ws.headers.add(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            await ws.prepare(self.request)
            self.ws = ws
        elif kind == "websocket.send":
            if self.ws is None:
                raise AppError("websocket.send before websocket.accept")
            if self.closed or self.ws.closed:
                raise ConnectionResetError("the WebSocket is closed")
            if message.get("bytes") is not None:
                await self.ws.send_bytes(message["bytes"])
            else:
                await self.ws.send_str(message.get("text") or "")
        elif kind == "websocket.close":
            self.closed = True
            if self.ws is not None and not self.ws.closed:
                reason = str(message.get("reason") or "").encode()
                await self.ws.close(code=int(message.get("code", 1000)), message=reason)
        else:
            raise AppError(f"unexpected message {kind!r}")
