"""The listening sockets: accepting connections, at most ``max_connections`` open at once
and ``max_connections_per_address`` from one client address, and the TLS handshake when
the server speaks HTTPS.

Our own accept loop rather than ``loop.create_server``: at the cap it simply stops
accepting, so further clients wait in the kernel's listen queue (not half-served, not
refused) and are accepted, in order, as soon as a connection closes. A connection from an
address that already has its share open is accepted and closed at once instead: waiting
in the queue, it would hold up the clients behind it.

Accepting is a reader callback on each listening socket that accepts and hands the
connection on in one step; stopping removes the callbacks. (An accept task that is
cancelled can lose a connection the kernel had just handed over, which a stopping
worker must not do: its clients would see a connection closed without an answer.)

Workers of one master accept from the same sockets, each only while no other has fewer
connections open (on a tie, the one that accepted least recently goes first:
davserver/balance.py). One that is not first leaves a waiting connection to the others
and goes on with its own work (the socket stays readable, so it looks again at each turn
of its event loop); when the connection is still waiting after TURN_WAIT (the others are
busy or at their cap), it takes it all the same, and whatever else is waiting then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import sockets
from .balance import Seat

log = logging.getLogger("davserver")

ACCEPT_RETRY = 0.5  # seconds to wait after accept() fails for want of resources
# At most one log line per address and this many seconds about connections refused for
# max_connections_per_address (a client hammering the server must not flood the log).
REFUSAL_LOG_INTERVAL = 60.0
TURN_WAIT = 0.02  # seconds a worker leaves waiting connections to the others at most
TURN_GAP = 0.05  # seconds without a look at them after which waiting ones are new ones

# Makes the protocol of one connection; it must call the function it is given once the
# connection has ended (connection_lost).
ProtocolFactory = Callable[[Callable[[], None]], asyncio.Protocol]


def client_key(address: Any) -> str:
    """What connections are counted by for ``max_connections_per_address``: the IPv4
    address, or the /64 network of an IPv6 address (one host is commonly given a whole
    /64, so counting single IPv6 addresses would limit nothing)."""
    host = address[0] if isinstance(address, tuple) else str(address)
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Listener:
    """Accepts connections on every address of ``host``, hands each to a protocol from
    ``factory``, and keeps at most ``max_connections`` open, at most
    ``max_connections_per_address`` of them from one client (see ``client_key``). A
    worker's ``seat`` shares the connections with the other workers (module docstring)."""

    def __init__(
        self,
        factory: ProtocolFactory,
        *,
        max_connections: int,
        max_connections_per_address: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 60.0,
        seat: Seat | None = None,
    ) -> None:
        self._factory = factory
        self.max_connections = max_connections
        self.max_per_address = max_connections_per_address or max_connections
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self.open_connections = 0
        self._per_client: Counter[str] = Counter()  # only clients with connections open
        # Per client refused for its limit: when its last log line went out, and how many
        # connections were refused since.
        self._refusals: dict[str, tuple[float, int]] = {}
        self._paused = False
        self._retry: asyncio.TimerHandle | None = None
        self._seat = seat
        self._left_since = self._left_last = 0.0  # leaving waiting connections to others
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each listening socket."""
        return [sock.getsockname()[:2] for sock in self._sockets]

    async def start(self, host: str, port: int) -> None:
        """Bind and listen on every address ``host`` resolves to; then accept."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        self.adopt(sockets.bind(infos))

    def adopt(self, listening: list[socket.socket]) -> None:
        """Accept on sockets already bound and listening (a master's, systemd's)."""
        for sock in listening:
            sock.setblocking(False)
            self._sockets.append(sock)
        if self._seat is not None:
            self._seat.take()
        self._watch()

    async def close(self) -> None:
        """Stop accepting and close the listening sockets. Connections already accepted
        (their TLS handshakes included) go on: they are the caller's to end."""
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
        if self._seat is not None:
            self._seat.leave()
        self._close_sockets()
        self._sockets = []

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)
        self._paused = False

    def _resume(self) -> None:
        self._retry = None
        if self._sockets:
            self._watch()

    def _not_first(self) -> bool:
        """Whether another worker should take the waiting connection (see the module
        docstring): it has fewer open, and this one has not been leaving it for
        TURN_WAIT yet."""
        if self._seat is None:
            return False
        if self._seat.first(self.open_connections):
            self._left_last = 0.0
            return False
        now = asyncio.get_running_loop().time()
        if now - self._left_last > TURN_GAP:  # not the connections left a moment ago
            self._left_since = now
        self._left_last = now
        return now - self._left_since < TURN_WAIT

    def _unwatch(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
        self._paused = True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept(self, sock: socket.socket) -> None:
        """Accept what is waiting on ``sock`` (a reader callback), up to the cap."""
        while self.open_connections < self.max_connections:
            if self._not_first():
                return
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                self._left_last = 0.0  # none left waiting
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of file descriptors or memory
                log.error("cannot accept a connection: %s (retrying)", exc)
                self._unwatch()
                self._retry = asyncio.get_running_loop().call_later(ACCEPT_RETRY, self._resume)
                return
            conn.setblocking(False)
            client = client_key(address)
            if self._per_client[client] >= self.max_per_address:
                conn.close()
                self._refused(client)
                continue
            self._per_client[client] += 1
            self.open_connections += 1
            if self._seat is not None:
                self._seat.accepted(self.open_connections)
            if self.open_connections == self.max_connections:
                log.warning(
                    "max_connections (%d) reached: new connections wait until one closes",
                    self.max_connections,
                )
            self._spawn(self._serve(conn, address, client))
        # At the cap: further clients wait in the kernel's queue until one closes.
        self._unwatch()

    def _refused(self, client: str) -> None:
        """Log a connection refused for ``max_connections_per_address``: the first of a
        client's, then at most one line per REFUSAL_LOG_INTERVAL with the count since."""
        now = asyncio.get_running_loop().time()
        last, count = self._refusals.get(client, (None, 0))
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[client] = (last, count + 1)
            return
        since = f" ({count} more since the last line)" if count else ""
        log.warning(
            "%s has max_connections_per_address (%d) open: its further connections are "
            "closed at once%s",
            client, self.max_per_address, since,
        )  # fmt: skip
        for key, (when, _) in list(self._refusals.items()):  # forget the quiet ones
            if now - when >= REFUSAL_LOG_INTERVAL:
                del self._refusals[key]
        self._refusals[client] = (now, 0)

    async def _serve(self, conn: socket.socket, address: Any, client: str) -> None:
        """Attach a protocol to an accepted socket (after the TLS handshake, if any)."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open_connections -= 1
                self._per_client[client] -= 1
                if self._per_client[client] <= 0:
                    del self._per_client[client]
                if self._seat is not None and self._sockets:  # still accepting
                    self._seat.count(self.open_connections)
                if self._paused and self._sockets and self._retry is None:
                    self._watch()

        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: self._factory(release),
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            )
        except asyncio.CancelledError:
            conn.close()
            release()
            raise
        except OSError as exc:  # ssl.SSLError included: not TLS, bad handshake, too slow
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "a client"
            log.info("connection from %s dropped: %s", peer, exc)
            conn.close()
            release()
