"""Big files stream through the git backend too: a 512 MiB PUT becomes a blob and comes
back out without ever sitting in the server's memory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import psutil
from gitrepo import git
from helpers import ServerProcess
from test_memory import PeakRSS

SIZE = 512 << 20
CHUNK = 1 << 20
LIMIT = 64 << 20


async def test_half_a_gib_put_and_get_keep_memory_flat(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    repo = tmp_path / "store.git"
    config = tmp_path / "git.toml"
    config.write_text(
        f'[server]\nstate_dir = "state"\naccess_log = false\n\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\nbackend = "git"\nrepo = "{repo}"\n'
    )
    server = server_process("--config", str(config))
    block = os.urandom(CHUNK)
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{server.url}/warm.bin", data=block * 2) as resp:
            assert resp.status == 201
        async with session.get(f"{server.url}/warm.bin") as resp:
            assert len(await resp.read()) == 2 * CHUNK
        baseline = psutil.Process(server.proc.pid).memory_info().rss

        async def body() -> AsyncIterator[bytes]:
            for _ in range(SIZE // CHUNK):
                yield block

        with PeakRSS(server.proc.pid) as rss:
            async with session.put(f"{server.url}/big.bin", data=body()) as resp:
                assert resp.status == 201
            put_peak = rss.peak
            received = 0
            async with session.get(f"{server.url}/big.bin") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Length"] == str(SIZE)
                async for chunk in resp.content.iter_chunked(CHUNK):
                    received += len(chunk)
        assert received == SIZE
    assert git(repo, "cat-file", "-s", "main:big.bin").strip() == str(SIZE)
    print(
        f"RSS baseline {baseline >> 20} MiB, PUT +{(put_peak - baseline) >> 20} MiB, "
        f"GET +{(rss.peak - baseline) >> 20} MiB"
    )
    assert put_peak - baseline < LIMIT, f"PUT grew RSS by {(put_peak - baseline) >> 20} MiB"
    assert rss.peak - baseline < LIMIT, f"GET grew RSS by {(rss.peak - baseline) >> 20} MiB"
