"""Fixtures of the scheduling tests: a server with accounts ann, bob and cat on either
backend (``site``); and no unexpected failure of scheduling in any test."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sched_data import Site, site_config, start_site

from davserver.config import Config


@pytest.fixture(params=["filesystem", "git"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """The configuration of a site on the backend named by the parameter."""
    return site_config(tmp_path, request.param)


@pytest.fixture
async def site(config: Config, aiohttp_client: Any, tmp_path: Path) -> Site:
    """A server with accounts ann, bob and cat, scheduling on."""
    return await start_site(aiohttp_client, config, tmp_path)


@pytest.fixture(autouse=True)
def no_scheduling_failure(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Scheduling logs what fails unexpectedly rather than failing the request that made
    the change: such a line fails the test."""
    yield
    failed = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("davserver.scheduling") and r.levelno >= logging.ERROR
    ]
    assert not failed, failed
