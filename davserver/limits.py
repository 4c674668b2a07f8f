"""What a client may send, and how slowly: the ``[server]`` size and time limits.

aiohttp reads each connection with a ``RequestHandler``; ``Connection`` extends it with
what aiohttp lacks, for every mount alike:

- a request head must arrive whole within ``read_timeout`` of its first byte (408, then
  the connection is closed); aiohttp itself only closes connections that sit idle
  (``keepalive_timeout``, our ``idle_timeout``, from the connection's start or the last
  answer until a whole request head has arrived);
- a body must not stall: ``read_timeout`` seconds without a byte while the server is
  waiting for one drops the connection (the handler's next read fails, so a PUT stores
  nothing);
- a chunked body that grows past ``max_body_size`` is refused: 413 goes out at once when
  no answer has begun, the handler's next read fails, and what the client still sends is
  read and dropped for a moment (so it sees the 413 rather than a reset) before the
  connection is closed;
- aiohttp answers 400 to an oversized request target or header; ``handle_error`` turns
  that into 414 or 431, and logs one line instead of a traceback for any bad request.

A declared ``Content-Length`` above ``max_body_size`` is refused by ``guard_body_size``
before the application sees the request: no ``100 Continue`` goes out, nothing is read
(nor is a request whose chunked body passed the limit before its handler started).

Bytes are received into one buffer per thread (``Connection`` is an asyncio
``BufferedProtocol``) and copied out at their size: asyncio's default is a fresh 256 KiB
``recv`` per read, which the allocator maps (over its mmap threshold, malloc.py), shrinks
and unmaps again, three system calls and a page fault for every request head.

The subclass uses a few of aiohttp 3.14's internals (``_request_count``, ``_messages``,
``_current_request``, ``_reading_paused``, ``_buffer_paused``, and ``_payload_parser``, set
once a connection is a WebSocket); tests/security/test_limits.py covers each behaviour
against the real server (tests/mounts/test_asgi.py a WebSocket past the deadlines).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from .config import ServerConfig

log = logging.getLogger("davserver")

# How long what a refused client still sends is read and dropped before the connection
# closes (unless the client closes first): closing with unread data makes the kernel send
# a reset, which can destroy the refusal before the client reads it.
LINGER = 5.0
# Bytes of a request line kept while it arrives, to tell an oversized target (414) from an
# oversized header (431) when aiohttp reports either as a line too long.
_LINE_KEPT = 64

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

RECEIVE_SIZE = 256 << 10
"""Bytes one read of a connection may take (asyncio's own read size)."""


class _Receiving(threading.local):
    """The buffer reads land in, one per thread: a read fills it and hands a copy on
    before anything else runs on that thread's event loop."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(RECEIVE_SIZE))


_receiving = _Receiving()


@dataclass(frozen=True, slots=True)
class Limits:
    """The ``[server]`` limits that concern connections and requests."""

    max_body_size: int
    max_request_line: int
    max_header_size: int
    max_headers: int
    idle_timeout: float
    read_timeout: float

    @classmethod
    def of(cls, server: ServerConfig) -> Limits:
        """The limits of a ``[server]`` table."""
        return cls(
            server.max_body_size, server.max_request_line, server.max_header_size,
            server.max_headers, server.idle_timeout, server.read_timeout,
        )  # fmt: skip

    def handler_kwargs(self) -> dict[str, Any]:
        """aiohttp ``RequestHandler`` options for the limits aiohttp enforces itself: the
        request target's length, a header's (name and value) length, the number of headers,
        and how long an idle connection is kept. Request bodies are passed on as sent, never
        inflated: a DAV tree refuses a Content-Encoding (415), and a script or an
        application gets the body with its ``Content-Encoding`` (a small gzip body must not
        become gigabytes inside the server)."""
        return {
            "keepalive_timeout": self.idle_timeout,
            "max_line_size": self.max_request_line,
            "max_field_size": self.max_header_size,
            "max_headers": self.max_headers,
            "auto_decompress": False,
        }


class BodyTooLarge(ConnectionError):
    """Raised to a handler reading a body that grew past ``max_body_size`` (the 413 has
    been sent for it). A ``ConnectionError``, so that mounts treat it like a client that
    went away: the request is abandoned, without a traceback."""


def _reason(status: int) -> str:
    return HTTPStatus(status).phrase


def _raw_answer(status: int) -> bytes:
    """A complete, closing HTTP/1.1 answer written straight to the transport."""
    text = f"{status} {_reason(status)}\n".encode()
    return (
        f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n"
    ).encode() + text


def _answer(status: int) -> web.Response:
    response = web.Response(status=status, text=f"{status} {_reason(status)}\n")
    response.force_close()
    return response


def guard_body_size(handler: Handler, limit: int) -> Handler:
    """``handler`` behind a check of the declared body size: a ``Content-Length`` above
    ``limit`` is answered 413 (and the connection closed) before the application runs, so
    an ``Expect: 100-continue`` client is refused before it sends the body."""

    async def guarded(request: web.BaseRequest) -> web.StreamResponse:
        if isinstance(request.content.exception(), BodyTooLarge):
            return _answer(413)  # past the limit before the handler started; 413 is out
        length = request.content_length
        if length is not None and length > limit:
            log.info(
                "%s %s from %s refused: 413 body of %d bytes exceeds max_body_size (%d)",
                request.method, request.raw_path, request.remote, length, limit,
            )  # fmt: skip
            return _answer(413)
        return await handler(request)

    return guarded


class Connection(RequestHandler, asyncio.BufferedProtocol):
    """aiohttp's protocol object for one connection, with davserver's limits (see the
    module's docstring). ``on_close`` is called once the connection has ended."""

    __slots__ = (
        "_answered",
        "_body",
        "_body_number",
        "_chunked",
        "_detached",
        "_discarding",
        "_head_since",
        "_last_read",
        "_limits",
        "_line",
        "_line_done",
        "_line_len",
        "_linger",
        "_on_close",
        "_refused",
        "_target_too_long",
        "_watch",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        limits: Limits,
        on_close: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **limits.handler_kwargs(), **kwargs)
        self._limits = limits
        self._on_close = on_close
        self._watch: asyncio.TimerHandle | None = None  # the head or body deadline
        self._linger: asyncio.TimerHandle | None = None
        self._last_read = loop.time()
        self._head_since: float | None = None  # when the head under way began
        self._line = bytearray()  # the start of its request line
        self._line_len = 0
        self._line_done = False
        self._target_too_long = False
        self._body: StreamReader | None = None  # the body being received
        self._chunked = False
        self._discarding = False  # after a refusal: incoming bytes are dropped
        self._detached: asyncio.Transport | None = None
        self._body_number = 0  # which request of the connection the body belongs to
        self._refused: StreamReader | None = None  # a body answered 413 mid-way
        self._answered = 0

    # -- reading -----------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport's next read goes (the thread's buffer)."""
        return _receiving.view

    def buffer_updated(self, nbytes: int) -> None:
        """A read put ``nbytes`` in the buffer: hand a copy to :meth:`data_received`."""
        self.data_received(bytes(_receiving.view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Time the head and the body, then let aiohttp parse; refuse a body past the
        limit."""
        if self._discarding:
            self._last_read = self._loop.time()
            return
        if self._payload_parser is not None:
            # Upgraded (a WebSocket): frames, no request heads or bodies to time.
            super().data_received(data)
            return
        body = self._body
        if body is not None and body.is_eof():
            body = self._body = None
        if data:
            now = self._last_read = self._loop.time()
            if body is None:  # the bytes begin or continue a request head
                if self._head_since is None:
                    self._head_since = now
                    self._line.clear()
                    self._line_len = 0
                    self._line_done = False
                    self._target_too_long = False
                    self._arm(now + self._limits.read_timeout)
                if not self._line_done:
                    self._track_line(data)
        count = self._request_count
        super().data_received(data)
        if self._request_count != count and self._messages:
            self._head_since = None
            message, payload = self._messages[-1]
            if isinstance(message, RawRequestMessage):
                if not payload.is_eof():
                    self._body = payload
                    self._body_number = self._request_count
                    self._chunked = bool(message.chunked)
                    self._arm(self._last_read + self._limits.read_timeout)
            elif isinstance(getattr(message, "exc", None), LineTooLong):
                # Before the request line ends, only the target can be too long.
                self._target_too_long = not self._line_done or self._target_too_long
        body = self._body
        if body is not None and self._chunked and body.total_bytes > self._limits.max_body_size:
            self._overflow(body)

    def _track_line(self, data: bytes) -> None:
        """Follow the request line of the head under way: is its target too long?"""
        start = 0
        while True:
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            room = _LINE_KEPT - len(self._line)
            if room > 0:
                self._line += data[start : min(stop, start + room)]
            self._line_len += stop - start
            if end < 0:
                return
            if self._line_len > 1 or self._line.strip():  # not an empty line before it
                break
            self._line.clear()  # RFC 9112 §2.2: empty lines before a request are ignored
            self._line_len = 0
            start = end + 1
        self._line_done = True
        line_len = self._line_len - (1 if self._line.endswith(b"\r") else 0)
        # METHOD SP TARGET SP VERSION: the method's length is known from the kept start, the
        # version is "HTTP/x.y" (8 bytes).
        method_end = self._line.find(b" ")
        target_len = line_len - method_end - 1 - 9 if method_end > 0 else line_len
        self._target_too_long = target_len > self._limits.max_request_line

    def resume_reading(self, resume_parser: bool = True) -> None:
        """Reading resumes: the time paused does not count against the client. aiohttp
        asks this each time a handler takes body bytes, paused or not; when nothing was
        paused there is nothing to resume (and no half-parsed data to feed again)."""
        if not self._reading_paused:
            return
        self._last_read = self._loop.time()
        super().resume_reading(resume_parser)

    # -- deadlines ---------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        if self._watch is None:
            self._watch = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        """The deadline came: drop a late head or a stalled body, or wait some more."""
        self._watch = None
        if self.transport is None and self._detached is None:
            return
        now = self._loop.time()
        timeout = self._limits.read_timeout
        if self._head_since is not None:
            due = self._head_since + timeout
            if now >= due:
                self._head_timeout()
            else:
                self._watch = self._loop.call_at(due, self._check)
            return
        body = self._body
        if body is None or body.is_eof():
            return
        if self._reading_paused or self._buffer_paused:
            self._last_read = now  # the server is not reading: not the client's fault
        due = self._last_read + timeout
        if now < due:
            self._watch = self._loop.call_at(due, self._check)
            return
        if self._detached is not None:  # refused, and the client has gone quiet: done
            self._detached.close()
            return
        log.info(
            "%s: request body stalled for %ss (read_timeout): connection dropped",
            self._peer(), timeout,
        )  # fmt: skip
        if self.transport is not None:
            self.transport.abort()

    def _head_timeout(self) -> None:
        log.info(
            "%s: no complete request head within %ss (read_timeout): 408, connection closed",
            self._peer(), self._limits.read_timeout,
        )  # fmt: skip
        transport = self.transport
        if transport is None:
            return
        if self._answered == self._request_count:  # no answer under way: 408 can be said
            transport.write(_raw_answer(408))
            self.force_close()
        else:
            transport.abort()

    # -- refusing a body past the limit ------------------------------------------------

    def _overflow(self, payload: StreamReader) -> None:
        """The chunked body passed ``max_body_size``: stop reading it, fail the handler's
        reads, say 413 if nothing has been said yet, and close."""
        self._discarding = True
        limit = self._limits.max_body_size
        log.info(
            "%s: refused: 413 chunked body passed max_body_size (%d bytes)", self._peer(), limit
        )
        transport = self.transport
        if self._answered >= self._body_number or transport is None:
            # The answer is out and aiohttp is reading the rest of the body to drop it: end
            # that read, and the connection once the answer is written.
            payload.feed_eof()
            self.close()
            return
        payload.set_exception(BodyTooLarge(f"request body passed max_body_size ({limit} bytes)"))
        request = self._current_request
        if request is not None and request.content is payload:
            cut = request.writer.output_size > 0
        else:  # its handler has not started: is an earlier answer still going out?
            cut = self._answered < self._body_number - 1
        if cut:
            # The answer has begun, or an earlier pipelined one is going out: cut it off.
            transport.abort()
            return
        # Not answered yet (the handler may not even have started: guard_body_size then
        # answers for it without running it).
        transport.write(_raw_answer(413))
        self._refused = payload
        # The handler can no longer write (its writes fail as on a closed connection);
        # the real transport reads and drops what still comes, then closes.
        self._detached = transport
        self.transport = None
        transport.resume_reading()
        self._linger = self._loop.call_later(LINGER, transport.close)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the answer (aiohttp); the access log shows the 413 sent mid-body."""
        if request.content is self._refused:
            resp = _answer(413)
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._answered += 1

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse: 414, 431 or 400, with one log line."""
        if status != 400 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        limits = self._limits
        if isinstance(exc, LineTooLong) and self._target_too_long:
            status = 414
            detail = f"request target over max_request_line ({limits.max_request_line})"
        elif isinstance(exc, LineTooLong):
            status, detail = 431, f"header over max_header_size ({limits.max_header_size})"
        elif isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message:
            status, detail = 431, f"more than max_headers ({limits.max_headers}) headers"
        else:
            detail = (exc.message.strip().splitlines() or ["bad request"])[0]
        log.info("%s: refused: %d %s", self._peer(), status, detail)
        return _answer(status)

    # -- closing -----------------------------------------------------------------------

    def force_close(self) -> None:
        """Close at once (aiohttp), the lingering transport of a refusal too."""
        super().force_close()
        if self._detached is not None:
            self._detached.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection has ended: stop the deadlines and give back its place."""
        for timer in (self._watch, self._linger):
            if timer is not None:
                timer.cancel()
        self._watch = self._linger = None
        self._detached = None
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
        super().connection_lost(exc)

    def _peer(self) -> str:
        peer = self.peername
        if isinstance(peer, tuple):
            host, port = peer[:2]
            return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        return str(peer or "client")
