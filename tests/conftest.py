"""Shared fixtures: an in-process server on a loopback port (on a folder or on a git
repository), a real server process, a private PostgreSQL cluster, and a snapshot of the
store for "nothing changed" checks. Every test runs under blockbuster, so a blocking disk
call on davserver's event loop fails the test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from blockbuster import BlockBuster, blockbuster_ctx
from gitrepo import git_app
from helpers import ServerProcess, start_server
from pgcluster import Cluster

from davserver.app import create_app
from davserver.config import Config, MountConfig, ServerConfig


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which davserver blocks its event loop on I/O."""
    with blockbuster_ctx("davserver") as bb:
        yield bb


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The folder the test server serves."""
    path = tmp_path / "root"
    path.mkdir()
    return path


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, root: Path) -> MakeClient:
    """Start davserver in-process on a loopback port, with mount options as keywords."""

    async def make(*, path: str = "/", **mount_options: Any) -> TestClient:
        config = Config(
            server=ServerConfig(state_dir=tmp_path / "state", access_log=False),
            mounts=(MountConfig(path=path, type="webdav", root=root, **mount_options),),
        )
        return await aiohttp_client(create_app(config))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    """A client of a server whose only mount is WebDAV of ``root`` at /."""
    return await make_client()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The git repository a git-backed test server serves (its first write creates it)."""
    return tmp_path / "store.git"


@pytest.fixture
def make_git_client(aiohttp_client: Any, tmp_path: Path, repo: Path) -> MakeClient:
    """Start davserver in-process on a loopback port with one mount, WebDAV at / over a git
    repository: ``repo`` unless another is given, with mount options as keywords."""

    async def make(at: Path | None = None, **mount_options: Any) -> TestClient:
        return await aiohttp_client(git_app(repo if at is None else at, tmp_path, **mount_options))

    return make


@pytest.fixture
async def git_client(make_git_client: MakeClient) -> TestClient:
    """A client of a server whose only mount is the git repository ``repo`` at /."""
    return await make_git_client()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes; they are stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(*args: str, cwd: Path | None = None, port: int | None = None) -> ServerProcess:
        server = start_server(cwd or tmp_path, *args, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A private PostgreSQL cluster, started for the first test that needs it and stopped
    at the end of the session."""
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(postgres: Cluster) -> str:
    """The URL of a new, empty database of the test cluster."""
    return postgres.new_database()
