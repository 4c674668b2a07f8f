"""HTTP Basic authentication against the htpasswd file.

Password hashes are slow by design, so checks run in the thread pool and a successful
check is remembered for a while (keyed by a digest of user, password and stored hash, so
a changed password or hash invalidates it). Failed attempts are logged, and each further
failure from the same client waits longer before its 401, up to a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from davserver.runtime.threads import offload

from . import htpasswd

log = logging.getLogger("davserver.auth")
REALM = "davserver"
REMEMBER = 300.0  # seconds a verified password is trusted without hashing it again
RELOAD = 2.0  # seconds between checks whether the htpasswd file changed
MAX_DELAY = 5.0


class BasicAuth:
    """Verifies ``Authorization: Basic`` headers against an htpasswd file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, str] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._verified: dict[bytes, float] = {}
        self._failures: dict[str, int] = {}

    async def _reload(self) -> None:
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
            self._verified.clear()

    async def open(self) -> None:
        """Read the accounts (a broken file stops the server at start)."""
        await self._reload()

    def names(self) -> list[str]:
        """The names of the accounts (as last read)."""
        return sorted(self._users)

    async def user(self, request: web.Request) -> str | None:
        """The verified user of the request, or None (after a delay when it failed)."""
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, sep, password = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            name, sep, password = "", "", ""
        await self._reload()
        if name not in self._users and "%" in name:
            # iOS 18.4 and later send "ann%40example.org" for "ann@example.org"
            # (mailcow-dockerized#6445, Radicale#1865).
            name = unquote(name)
        stored = self._users.get(name) if sep else None
        if stored is not None and await self._check(name, password, stored):
            self._failures.pop(request.remote or "", None)
            return name
        await self._fail(request, name)
        return None

    async def _check(self, name: str, password: str, stored: str) -> bool:
        key = hashlib.sha256(f"{name}\0{password}\0{stored}".encode()).digest()
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return True
        if not await offload(htpasswd.check_password, password, stored):
            return False
        self._verified[key] = now + REMEMBER
        return True

    async def _fail(self, request: web.Request, name: str) -> None:
        client = request.remote or ""
        count = self._failures.get(client, 0) + 1
        self._failures[client] = count
        log.warning("failed login for %r from %s (%d in a row)", name, client, count)
        await asyncio.sleep(min(MAX_DELAY, 0.1 * 2 ** (count - 1)))


def challenge() -> web.Response:
    """The 401 that asks a client to authenticate."""
    return web.Response(
        status=401,
        text="401 Unauthorized\n",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )
