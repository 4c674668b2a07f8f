"""The accounts of the htpasswd file as the server sees them: read again when it changes."""

from __future__ import annotations

import time
from pathlib import Path

from davserver.runtime.threads import offload

from . import htpasswd

RELOAD = 2.0  # seconds between checks whether the htpasswd file changed


class HtpasswdAccounts:
    """The users and password hashes of an htpasswd file, checked for changes at most
    every ``RELOAD`` seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, str] = {}
        self._mtime: float | None = None
        self._checked = 0.0

    async def refresh(self) -> None:
        """Read the file again if it changed (at most every ``RELOAD`` seconds; a broken
        file raises ``HtpasswdError``, which stops the server at start)."""
        now = time.monotonic()
        if now - self._checked < RELOAD:
            return
        self._checked = now

        def load() -> tuple[float | None, dict[str, str] | None]:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return None, {}
            if mtime == self._mtime:
                return mtime, None
            return mtime, htpasswd.read(self.path)

        mtime, users = await offload(load)
        if users is not None:
            self._users, self._mtime = users, mtime

    def names(self) -> list[str]:
        """The names of the accounts (as last read)."""
        return sorted(self._users)

    def hash_of(self, name: str) -> str | None:
        """The stored hash of an account (as last read), None when there is none."""
        return self._users.get(name)
