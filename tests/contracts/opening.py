"""What the contract suites share: implementations opened at a place, closed when the test
ends (unless the test closed them itself: closing twice is no part of any interface)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class Closable(Protocol):
    async def close(self) -> None: ...


_T = TypeVar("_T", bound=Closable)


class Opened(Generic[_T]):
    """Opens an implementation with ``factory`` (called with the arguments given) and
    remembers it until it is closed."""

    def __init__(self, factory: Callable[..., _T]) -> None:
        self._factory = factory
        self._open: list[_T] = []

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
