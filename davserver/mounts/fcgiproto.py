"""The FastCGI 1.0 wire format, the responder role: records and name-value pairs.

One request at a time on a connection (request id 1), kept open for the next one with
``FCGI_KEEP_CONN``: no multiplexing, as lighttpd and nginx chose.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = range(1, 8)
RESPONDER = 1
KEEP_CONN = 1
REQUEST_ID = 1
MAX_CONTENT = 65535
_HEADER = struct.Struct(">BBHHBx")
# protocolStatus of FCGI_END_REQUEST
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = range(4)


class ProtocolError(Exception):
    """The application broke the FastCGI protocol."""


def record(kind: int, content: bytes = b"") -> bytes:
    """One record (``content`` at most 65535 bytes), padded to a multiple of 8."""
    padding = -len(content) % 8
    return (
        _HEADER.pack(VERSION, kind, REQUEST_ID, len(content), padding)
        + content
        + (b"\x00" * padding)
    )


def stream(kind: int, data: bytes) -> bytes:
    """``data`` as records of a stream (not its empty end record)."""
    view = memoryview(data)
    return b"".join(
        record(kind, bytes(view[i : i + MAX_CONTENT])) for i in range(0, len(data), MAX_CONTENT)
    )


_PARAMS_END = record(PARAMS)


def begin(keep: bool = True) -> bytes:
    """FCGI_BEGIN_REQUEST for a responder."""
    return record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, KEEP_CONN if keep else 0))


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 128 else struct.pack(">I", n | 0x80000000)


def params(pairs: Iterable[tuple[str, str]]) -> bytes:
    """The FCGI_PARAMS stream of ``pairs``, its empty end record included. Names and values
    go as latin-1 bytes where they fit, else UTF-8 (header values arrive as latin-1)."""
    parts = []
    for name, value in pairs:
        n = name.encode("latin-1")
        try:
            v = value.encode("latin-1")
        except UnicodeEncodeError:
            v = value.encode("utf-8", "surrogateescape")
        if len(n) < 128 and len(v) < 128:
            parts.append(bytes((len(n), len(v))))
        else:
            parts.append(_length(len(n)) + _length(len(v)))
        parts.append(n)
        parts.append(v)
    body = b"".join(parts)
    if len(body) <= MAX_CONTENT:
        return record(PARAMS, body) + _PARAMS_END
    return stream(PARAMS, body) + _PARAMS_END


def header(data: bytes | bytearray) -> tuple[int, int, int]:
    """Type, content length and padding of the record that ``data`` starts with (at least
    8 bytes); records of another request than ours are an error (we send none)."""
    version, kind, request_id, length, padding = _HEADER.unpack_from(data)
    if version != VERSION or request_id != REQUEST_ID:
        raise ProtocolError(f"unexpected record (version {version}, request {request_id})")
    return kind, length, padding


def end_status(content: bytes) -> tuple[int, int]:
    """appStatus and protocolStatus of FCGI_END_REQUEST."""
    if len(content) < 8:
        raise ProtocolError("short FCGI_END_REQUEST")
    app_status, protocol_status = struct.unpack(">IB3x", content[:8])
    return app_status, protocol_status
