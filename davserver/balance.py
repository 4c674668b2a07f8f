"""Which worker takes the next connection: the one with the fewest open.

Every worker accepts from the same listening sockets (one queue: a connection never waits
behind a busy worker while another is free). Left alone, whichever worker the kernel wakes
first would take a whole burst of connections (a client opening 16 at once), and keep them.
So each worker keeps, in a table the master shares with all of them (anonymous shared
memory made before the workers fork), how many connections it has open and when it last
accepted one; a worker accepts only while no other has fewer open (on a tie, the one that
accepted least recently goes first: one client's connections one after the other reach
every worker in turn), and otherwise leaves the connection to the others.
Each worker writes only its own seat of the table, and a torn read at worst lets a
connection go to the other worker; a worker that finds nobody takes the connections it
left waits a moment and then takes them itself (see davserver/listener.py).
"""

from __future__ import annotations

import mmap
import struct
import time

_SEAT = struct.Struct("<QQ")  # open connections, when it last accepted one (monotonic ns)
VACANT = (1 << 64) - 1
"""Open connections of a seat nobody accepts on: never the fewest."""


class Seats:
    """The table of ``count`` seats, made by the master before it forks the workers."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._map = mmap.mmap(-1, _SEAT.size * count)  # MAP_SHARED: seen by the children
        for index in range(count):
            self.vacate(index)

    def seat(self, index: int) -> Seat:
        """A worker's view of the table, sitting at ``index``."""
        return Seat(self._map, index, self.count)

    def vacate(self, index: int) -> None:
        """Nobody accepts on seat ``index`` any more (its worker stopped or died)."""
        _SEAT.pack_into(self._map, _SEAT.size * index, VACANT, 0)


class Seat:
    """One worker's seat: it writes its own counts and reads the others'."""

    def __init__(self, table: mmap.mmap, index: int, count: int) -> None:
        self._map = table
        self._offset = _SEAT.size * index
        self._others = [_SEAT.size * i for i in range(count) if i != index]
        self._last = 0

    def take(self) -> None:
        """Start accepting (no connection open yet)."""
        self._last = 0
        self.count(0)

    def leave(self) -> None:
        """Stop accepting."""
        self.count(VACANT)

    def accepted(self, open_connections: int) -> None:
        """A connection was accepted; ``open_connections`` are open now."""
        self._last = time.monotonic_ns()
        self.count(open_connections)

    def count(self, open_connections: int) -> None:
        """This worker has ``open_connections`` open now."""
        _SEAT.pack_into(self._map, self._offset, open_connections, self._last)

    def first(self, open_connections: int) -> bool:
        """Whether this worker, with ``open_connections``, may take the next connection:
        no other has fewer open, or as many and accepted one longer ago."""
        mine = (open_connections, self._last)
        return all(mine <= _SEAT.unpack_from(self._map, o) for o in self._others)
