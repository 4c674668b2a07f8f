"""Fixtures of the WebDAV-Push tests: the test push service and servers with push on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pushservice import PushService
from pushtools import MakeServer, push_config

from davserver.app import create_app


@pytest.fixture
def service() -> Iterator[PushService]:
    """A running test push service."""
    found = PushService().start()
    yield found
    found.stop()


@pytest.fixture
def make_server(aiohttp_client: Any, tmp_path: Path) -> MakeServer:
    """An in-process server with push on (options as for ``push_config``)."""

    async def make(**options: Any) -> TestClient:
        return await aiohttp_client(create_app(push_config(tmp_path, **options)))

    return make


@pytest.fixture
async def http(make_server: MakeServer) -> TestClient:
    """A server with push on, over folders."""
    return await make_server()
