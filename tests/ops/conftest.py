"""Fixtures of the operations tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from opsite import make_accounts


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    """An htpasswd file with the account ``ops``."""
    return make_accounts(tmp_path)
