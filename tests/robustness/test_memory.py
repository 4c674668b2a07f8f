"""Big files stream: a 1 GiB PUT and its GET never sit in the server's memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpers import ServerProcess
from rss import CHUNK, round_trip

GIB = 1 << 30


async def test_one_gib_put_and_get_keep_memory_flat(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    trip = await round_trip(server_process(), GIB)
    stored = tmp_path / "data" / "big.bin"
    assert stored.stat().st_size == GIB
    with stored.open("rb") as f:
        f.seek(GIB - CHUNK)
        assert f.read() == trip.block
    trip.check()
