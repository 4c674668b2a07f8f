"""What a git branch tells about changes made behind the server's back (a push, a
commit by git itself): a folder's ETag is its tree id, which moves when anything below it
does, so a moved tree means the folder must be listed again."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Storage


class TreeFeed:
    """Changes of folders on a git branch, from their tree ids (see :class:`base.Feed`)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._trees: dict[str, str] = {}

    async def _tree(self, path: str) -> str | None:
        res = await self._storage.stat(path)
        return res.etag if res is not None else None

    async def start(self, path: str) -> None:
        """Note the folder's tree as it is before it is listed."""
        tree = await self._tree(path)
        if tree is not None:
            self._trees[path] = tree

    async def changes(self, path: str) -> set[str] | None:
        """Nothing when the folder's tree is the one last seen; else None (list it)."""
        known = self._trees.get(path)
        if known is not None and await self._tree(path) == known:
            return set()
        return None

    def close(self) -> None:
        """Nothing to release."""
