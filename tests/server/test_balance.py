"""Workers accepting from one listening socket share its connections (davserver/balance.py,
davserver/listener.py): two listeners of one process stand in for two workers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from davserver import listener as listener_module
from davserver.balance import VACANT, Seats
from davserver.listener import Listener


class Held(asyncio.Protocol):
    """Keeps the connection open until the client closes it."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()


@pytest.fixture
async def listening() -> AsyncIterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def connect(sock: socket.socket, count: int) -> list[asyncio.StreamWriter]:
    port = sock.getsockname()[1]
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(count))
    )
    return [writer for _, writer in opened]


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


def test_a_seat_is_first_while_no_other_has_fewer_open() -> None:
    seats = Seats(3)
    one, two = seats.seat(0), seats.seat(1)
    assert one.first(5)  # the others are vacant
    one.take()
    two.take()
    assert one.first(0) and two.first(0)
    one.accepted(1)  # as many open then: the one that accepted longer ago goes
    assert two.first(1) and not one.first(1)
    two.accepted(1)
    assert one.first(1) and not two.first(1)
    one.count(2)
    assert two.first(1) and not two.first(3)
    seats.vacate(0)  # its worker died: no longer the fewest
    assert two.first(3)
    one.leave()
    assert two.first(VACANT - 1)


async def test_a_burst_of_connections_is_shared_evenly(listening: socket.socket) -> None:
    seats = Seats(2)
    workers = [Listener(Held, max_connections=100, seat=seats.seat(i)) for i in range(2)]
    for worker in workers:
        worker.adopt([listening.dup()])
    clients = await connect(listening, 16)
    try:
        await until(lambda: sum(w.open_connections for w in workers) == 16, "not all accepted")
        assert [w.open_connections for w in workers] == [8, 8]
    finally:
        for client in clients:
            client.close()
        for worker in workers:
            await worker.close()


async def test_connections_left_to_a_worker_that_does_not_take_them_are_taken(
    listening: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker with fewer open that does not accept (busy, stuck): the
    connections wait at most TURN_WAIT each, then this one takes them."""
    monkeypatch.setattr(listener_module, "TURN_WAIT", 0.05)
    seats = Seats(2)
    seats.seat(1).take()  # no connection open, and it never accepts
    worker = Listener(Held, max_connections=100, seat=seats.seat(0))
    worker.adopt([listening.dup()])
    loop = asyncio.get_running_loop()
    started = loop.time()
    clients = await connect(listening, 3)
    try:
        await until(lambda: worker.open_connections == 3, "the connections were not taken")
        assert loop.time() - started >= 0.05  # the second one was left to the other first
    finally:
        for client in clients:
            client.close()
        await worker.close()


async def test_connections_one_after_the_other_reach_each_worker_in_turn(
    listening: socket.socket,
) -> None:
    seats = Seats(2)
    workers = [Listener(Held, max_connections=100, seat=seats.seat(i)) for i in range(2)]
    for worker in workers:
        worker.adopt([listening.dup()])
    served: list[int] = []
    try:
        for _ in range(6):
            (client,) = await connect(listening, 1)
            await until(lambda: sum(w.open_connections for w in workers) == 1, "not accepted")
            served.append(next(i for i, w in enumerate(workers) if w.open_connections))
            client.close()
            await until(lambda: sum(w.open_connections for w in workers) == 0, "not closed")
        assert sorted(served) == [0, 0, 0, 1, 1, 1] and served[0] != served[1]
    finally:
        for worker in workers:
            await worker.close()


async def test_a_worker_that_stopped_accepting_is_never_first_again(
    listening: socket.socket,
) -> None:
    """Its connections closing afterwards (it finishes them before it exits) do not make
    it look like the worker with the fewest open."""
    seats = Seats(2)
    stopping = Listener(Held, max_connections=100, seat=seats.seat(0))
    stopping.adopt([listening.dup()])
    (client,) = await connect(listening, 1)
    await until(lambda: stopping.open_connections == 1, "not accepted")
    await stopping.close()
    client.close()
    await until(lambda: stopping.open_connections == 0, "not closed")
    other = seats.seat(1)
    other.take()
    assert other.first(50)
