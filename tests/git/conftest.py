"""In this folder the server under test serves a git repository."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient


@pytest.fixture
async def client(git_client: TestClient) -> TestClient:
    """A client of a server whose only mount is the git repository ``repo`` at /."""
    return git_client
