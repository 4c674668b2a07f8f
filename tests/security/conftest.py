"""Fixtures of the login tests: a private OpenLDAP server (tests/ldapserver.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ldapserver import Slapd


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """An OpenLDAP server with the test tree, started for the first test that needs it and
    stopped at the end of the session (tests must leave it running)."""
    server = Slapd()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def own_slapd() -> Iterator[Slapd]:
    """An OpenLDAP server of the test's own, which it may stop and start."""
    server = Slapd()
    try:
        server.start()
        yield server
    finally:
        server.remove()
