"""WSGI applications the tests mount: ``validated`` (every view wrapped in
``wsgiref.validate.validator``), ``raw`` (views that break the rules on purpose) and
``hello`` (a plain list answer)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
TEXT = [("Content-Type", "text/plain")]


def _query(environ: Environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A whole answer as a list."""
    start_response("200 OK", [*TEXT, ("X-Hello", "1")])
    return [b"Hello, ", b"World!"]


def environ_view(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The environ's string values and flags as JSON."""
    out = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Read the body the way the query says (length, sized, lines) and report it."""
    stream = environ["wsgi.input"]
    how = _query(environ).get("how", "length")
    if how == "length" and environ.get("CONTENT_LENGTH"):
        data = stream.read(int(environ["CONTENT_LENGTH"]))
    elif how in ("sized", "length"):
        parts = []
        while chunk := stream.read(65536):
            parts.append(chunk)
        data = b"".join(parts)
    else:
        data = b"".join(iter(stream.readline, b""))
    start_response("200 OK", TEXT)
    return [f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()]


def stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """Yield "first", wait for the file the query names, then yield "second"."""
    go = _query(environ)["go"]
    start_response("200 OK", TEXT)
    yield b"first\n"
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield b"second\n"


def writer(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Send the body with the write() callable, then a last piece from the iterable."""
    write = start_response("200 OK", TEXT)
    write(b"written ")
    write(b"twice ")
    return [b"and returned"]


def failing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Fail before any answer."""
    raise RuntimeError("the view failed")


def error_page(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Start an answer, fail, and replace it through exc_info."""
    start_response("200 OK", TEXT)
    try:
        raise ValueError("late trouble")
    except ValueError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    return [b"the application's own error page"]


def not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The application's own 404 page."""
    start_response("404 Not Found", TEXT)
    return [b"no such page in this app"]


def failing_midway(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """Fail after the first chunk went out."""
    start_response("200 OK", TEXT)
    yield b"partial"
    raise RuntimeError("midway")


class Closing:
    """An iterable that writes a marker file when closed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __iter__(self) -> Iterator[bytes]:
        yield b"one "
        yield b"two"

    def close(self) -> None:
        with open(self.marker, "w") as f:
            f.write("closed")


class Endless(Closing):
    """An endless answer that writes a marker file when closed."""

    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield b"y" * 65536


def endless(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """An answer that never ends; its close() leaves a marker at the path the query names."""
    start_response("200 OK", TEXT)
    return Endless(_query(environ)["marker"])


def closing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """An answer whose close() leaves a marker at the path the query names."""
    start_response("200 OK", TEXT)
    return Closing(_query(environ)["marker"])


def sendfile(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Ask the server to send the file the query names."""
    start_response(
        "200 OK", [("Content-Type", "application/x-thing"), ("X-Sendfile", _query(environ)["f"])]
    )
    return [b"never sent"]


def sendfile_headers(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The X-Sendfile* and Content-Range headers (and the status) the query gives."""
    query = _query(environ)
    headers = [("Content-Type", "application/x-thing")]
    headers += [(k, v) for k, v in query.items() if k.lower().startswith(SENT_HEADERS)]
    start_response(query.get("status", "200 OK"), headers)
    return [b"never sent"]


SENT_HEADERS = ("x-sendfile", "content-range")


def slow(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Take a while (blocking its thread, not the server)."""
    time.sleep(float(_query(environ).get("s", "1")))
    start_response("200 OK", TEXT)
    return [b"slow"]


def errors(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Write to wsgi.errors."""
    stream = environ["wsgi.errors"]
    stream.write("first problem\nsecond ")
    stream.writelines(["problem\n"])
    stream.flush()
    start_response("200 OK", TEXT)
    return [b"logged"]


VIEWS: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "hello": hello,
    "environ": environ_view,
    "echo": echo,
    "stream": stream,
    "writer": writer,
    "failing": failing,
    "error-page": error_page,
    "not-found": not_found,
    "failing-midway": failing_midway,
    "closing": closing,
    "endless": endless,
    "sendfile": sendfile,
    "sendfile-headers": sendfile_headers,
    "slow": slow,
    "errors": errors,
}


def dispatch(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The view named by the first segment of PATH_INFO (environ for anything else)."""
    name = environ.get("PATH_INFO", "").strip("/").partition("/")[0]
    return VIEWS.get(name, environ_view)(environ, start_response)


validated = validator(dispatch)


def raw(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Views that break PEP 3333 on purpose, named by PATH_INFO."""
    name = environ.get("PATH_INFO", "").strip("/")
    if name == "bad-status":
        start_response("200", TEXT)
    elif name == "hop-by-hop":
        start_response("200 OK", [*TEXT, ("Connection", "close")])
    elif name == "str-body":
        start_response("200 OK", TEXT)
        return ["not bytes"]  # type: ignore[list-item]
    elif name == "no-start":
        return [b"never started"]
    elif name == "short":
        start_response("200 OK", [*TEXT, ("Content-Length", "100")])
        return iter([b"only ten.."])
    elif name == "twice":
        start_response("200 OK", TEXT)
        start_response("200 OK", TEXT)
    return [b"?"]
