"""A Python FastCGI application (flup) that the FastCGI tests have the server start: its
listening socket is its standard input. Views by the first segment of PATH_INFO."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from flup.server.fcgi import WSGIServer

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
TEXT = [("Content-Type", "text/plain")]
SENT_HEADERS = ("x-sendfile", "content-range")


def _query(environ: Environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The view PATH_INFO names."""
    view = environ.get("PATH_INFO", "").strip("/").partition("/")[0]
    query = _query(environ)
    if view == "environ":
        out = {k: v for k, v in environ.items() if isinstance(v, str)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(out).encode()]
    if view == "echo":  # the body's length and digest, read as it comes
        digest, size = hashlib.sha256(), 0
        while chunk := environ["wsgi.input"].read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
        start_response("200 OK", TEXT)
        return [f"{size} {digest.hexdigest()}".encode()]
    if view == "stream":
        start_response("200 OK", TEXT)
        return _stream(int(query.get("n", "3")), float(query.get("pause", "0")))
    if view == "crash":
        os._exit(3)
    if view == "slow":
        time.sleep(float(query.get("s", "1")))
        start_response("200 OK", TEXT)
        return [b"slow"]
    if view == "sendfile":  # the X-Sendfile* and Content-Range headers the query gives
        headers = [("Content-Type", "application/x-thing")]
        headers += [(k, v) for k, v in query.items() if k.lower().startswith(SENT_HEADERS)]
        start_response(query.get("status", "200 OK"), headers)
        return [b"never sent"]
    if view == "stderr":
        sys.stderr.write("a problem reported on stderr\n")
        sys.stderr.flush()
        start_response("200 OK", TEXT)
        return [b"logged"]
    start_response("200 OK", [*TEXT, ("X-App", "flup")])
    return [b"Hello from FastCGI"]


def _stream(n: int, pause: float) -> Iterator[bytes]:
    for i in range(n):
        yield f"part {i}\n".encode()
        time.sleep(pause)


if __name__ == "__main__":
    WSGIServer(app, multiplexed=False).run()
