"""What the contract suites share: implementations opened at a place, closed when the test
ends (unless the test closed them itself: closing twice is no part of any interface).

A place is a folder for what lives in the state folder, a database of the test cluster
for what lives in PostgreSQL (:class:`Place`); the same place opened twice is what two
processes (or hosts) sharing the state see.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import pytest


class Closable(Protocol):
    async def close(self) -> None: ...


_T = TypeVar("_T", bound=Closable)


class Opened(Generic[_T]):
    """Opens an implementation with ``factory`` (called with the arguments given) and
    remembers it until it is closed."""

    def __init__(self, factory: Callable[..., _T], place: Place | None = None) -> None:
        self._factory = factory
        self._open: list[_T] = []
        self.place = place
        """Where the factory opens by default."""

    def __call__(self, *args: Any, **kwargs: Any) -> _T:
        opened = self._factory(*args, **kwargs)
        self._open.append(opened)
        return opened

    async def close(self, opened: _T) -> None:
        """Close one, as a restart would."""
        self._open.remove(opened)
        await opened.close()

    async def close_all(self) -> None:
        while self._open:
            await self._open.pop().close()


@dataclass
class Place:
    """Where implementations are opened: ``folder``, and for those kept in PostgreSQL a
    database made when first asked for (``url``)."""

    folder: Path
    new_database: Callable[[], str] | None = None
    _url: str | None = None
    _others: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        """The database of this place."""
        if self._url is None:
            assert self.new_database is not None, "the implementation is not marked in_database"
            self._url = self.new_database()
        return self._url

    def elsewhere(self) -> Place:
        """Another place, which shares nothing with this one."""
        folder = self.folder / f"elsewhere-{next(self._others)}"
        folder.mkdir()
        return Place(folder, self.new_database)


def in_database(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a factory whose implementation is kept in PostgreSQL (its place gets a
    database of the test cluster)."""
    factory.in_database = True  # type: ignore[attr-defined]
    return factory


def place_for(request: pytest.FixtureRequest, folder: Path) -> Place:
    """The place of the implementation ``request.param`` (started: the test cluster,
    when it is kept there)."""
    if getattr(request.param, "in_database", False):
        return Place(folder, request.getfixturevalue("postgres").new_database)
    return Place(folder)
