"""Big files stream through the git backend too: a 512 MiB PUT becomes a blob and comes
back out without ever sitting in the server's memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitrepo import git
from helpers import ServerProcess
from rss import round_trip

SIZE = 512 << 20


async def test_half_a_gib_put_and_get_keep_memory_flat(
    tmp_path: Path, repo: Path, server_process: Callable[..., ServerProcess]
) -> None:
    config = tmp_path / "git.toml"
    config.write_text(
        f'[server]\nstate_dir = "state"\naccess_log = false\n\n'
        f'[[mounts]]\npath = "/"\ntype = "webdav"\nbackend = "git"\nrepo = "{repo}"\n'
    )
    trip = await round_trip(server_process("--config", str(config)), SIZE)
    assert git(repo, "cat-file", "-s", "main:big.bin").strip() == str(SIZE)
    trip.check()
