"""The fixtures of the CalDAV tests, loaded with ``pytest_plugins = ("caldav_data.fixtures",)``
(a plugin module of its own, so that pytest can rewrite its asserts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from davserver.app import create_app

from . import Cal, MakeCal, caldav_config


@pytest.fixture
def make_cal(aiohttp_client: Any, tmp_path: Path) -> MakeCal:
    """Start a server with a CalDAV mount in-process; mount options as keywords."""

    async def make(*, backend: str = "filesystem", **options: Any) -> Cal:
        client = await aiohttp_client(
            create_app(caldav_config(tmp_path, backend=backend, **options))
        )
        return Cal(client, tmp_path, backend)

    return make


@pytest.fixture
async def cal(make_cal: MakeCal) -> Cal:
    """A server with the embedded default's layout, calendars on the filesystem."""
    return await make_cal()
