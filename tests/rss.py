"""What a big PUT and its GET cost a ``davserver serve`` process in resident memory: the
streaming checks of the WebDAV store (robustness/test_memory.py) and of the git backend
(git/test_git_memory.py)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import psutil
from helpers import ServerProcess

CHUNK = 1 << 20
LIMIT = 64 << 20


class PeakRSS:
    """Samples a process's resident memory in a thread and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class RoundTrip:
    """What a big PUT and its GET cost a server process: the block the body repeats and
    the resident memory before, at the PUT's peak and at the GET's peak."""

    block: bytes
    baseline: int
    put_peak: int
    get_peak: int

    def check(self, limit: int = LIMIT) -> None:
        """Print the figures; neither the PUT nor the GET grew the memory by ``limit``."""
        put, get = self.put_peak - self.baseline, self.get_peak - self.baseline
        print(f"RSS baseline {self.baseline >> 20} MiB, PUT +{put >> 20} MiB, GET +{get >> 20} MiB")
        assert put < limit, f"PUT grew RSS by {put >> 20} MiB"
        assert get < limit, f"GET grew RSS by {get >> 20} MiB"


async def round_trip(server: ServerProcess, size: int) -> RoundTrip:
    """PUT ``size`` bytes to /big.bin of ``server`` as a stream of 1 MiB blocks, GET them
    back, and measure its memory (after warming its code paths up)."""
    block = os.urandom(CHUNK)
    async with aiohttp.ClientSession() as session:
        # Warm up code paths (imports, buffers) before taking the baseline.
        async with session.put(f"{server.url}/warm.bin", data=block * 2) as resp:
            assert resp.status == 201
        async with session.get(f"{server.url}/warm.bin") as resp:
            assert len(await resp.read()) == 2 * CHUNK
        baseline = psutil.Process(server.proc.pid).memory_info().rss

        async def body() -> AsyncIterator[bytes]:
            for _ in range(size // CHUNK):
                yield block

        with PeakRSS(server.proc.pid) as rss:
            async with session.put(f"{server.url}/big.bin", data=body()) as resp:
                assert resp.status == 201
            put_peak = rss.peak
            received = 0
            async with session.get(f"{server.url}/big.bin") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Length"] == str(size)
                async for chunk in resp.content.iter_chunked(CHUNK):
                    if received == 0:
                        assert chunk == block[: len(chunk)]
                    received += len(chunk)
        assert received == size
    return RoundTrip(block, baseline, put_peak, rss.peak)
