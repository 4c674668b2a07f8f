"""The drive tests run on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from drive_support import Drive, make_drive


@pytest.fixture(params=["filesystem", "git"])
async def drive(
    request: pytest.FixtureRequest, make_client: Any, make_git_client: Any, root: Path, repo: Path
) -> Drive:
    """A WebDAV mount at / on each backend."""
    return await make_drive(request.param, make_client, make_git_client, root, repo)
