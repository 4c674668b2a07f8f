"""The listening sockets: bound by the server itself, or handed over by systemd.

A single process binds its sockets when it starts. With several workers the master binds
them (or takes systemd's, ``LISTEN_FDS``, socket activation) before it starts any worker,
and every worker accepts from that one set (davserver/balance.py decides which takes a
connection). The master keeps them open, so a worker that stops (a restart, a crash)
leaves the waiting connections to the others and none is dropped.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

BACKLOG = 1024  # connections the kernel keeps waiting (Linux caps it at somaxconn)
SD_LISTEN_FDS_START = 3

AddressInfo = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]
"""One address as ``getaddrinfo`` gives it."""


def bind(infos: Sequence[AddressInfo]) -> list[socket.socket]:
    """Listening, non-blocking sockets on the addresses ``getaddrinfo`` gave (one each)."""
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                where = f"{address[0]!s} port {address[1]!s}"
                raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def addresses_of(host: str, port: int) -> Sequence[AddressInfo]:
    """What ``host`` and ``port`` resolve to, for :func:`bind` (blocking: DNS)."""
    return socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)


def from_systemd() -> list[socket.socket]:
    """The listening sockets systemd passed to this process (socket activation), or []
    when it passed none; the variables that named them are removed, so that children do
    not take them for theirs."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets
