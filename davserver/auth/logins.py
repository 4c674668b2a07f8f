"""Who a request comes from: the one place that checks credentials, whichever source
knows the user (a trusted proxy's header, an app password, the htpasswd file, LDAP).

Password checks are slow by design, so they run on worker threads, and a successful one
is remembered for ``REMEMBER`` seconds (keyed by a digest of name and password). What it
was checked against is remembered with it and looked at again at each use: a changed
htpasswd hash, or an app password revoked, ends it at the next request (the app
passwords file is looked at every time one is used). Failed attempts are logged, and
each further failure from the same client waits longer before its 401, up to a few
seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from davserver.config import Config
from davserver.runtime.threads import offload

from . import apppasswords, htpasswd
from .accounts import HtpasswdAccounts
from .apppasswords import AppPasswords
from .basic import credentials
from .groups import Groups
from .ldap import Directory
from .proxy import ProxyRefused, TrustedProxy

log = logging.getLogger("davserver.auth")
REMEMBER = 300.0  # seconds a verified password is trusted without checking it again
MAX_DELAY = 5.0
KEEP = 10_000  # remembered logins past which the expired ones are dropped
HTPASSWD, LDAP, APP_PASSWORD, PROXY = "htpasswd", "ldap", "app-password", "proxy"
"""The sources of a login, as the access log names them."""


class LoginFailed(Exception):
    """The credentials (or the proxy's header) were refused: 401."""


@dataclass(frozen=True, slots=True)
class Login:
    """Who a request comes from, and which source said so."""

    user: str
    source: str


@dataclass(frozen=True, slots=True)
class _Verified:
    expires: float
    login: Login
    token: str | None  # the stored hash the password matched (htpasswd, app password)


class Logins:
    """The login sources of the configuration, tried in order: the proxy's header, then
    for Basic credentials app passwords, the htpasswd file, the directory. The first
    source that knows the user decides (as Apache's providers do)."""

    def __init__(self, config: Config) -> None:
        auth = config.auth
        self.accounts = HtpasswdAccounts(auth.htpasswd) if auth.htpasswd is not None else None
        self.directory = Directory(auth.ldap) if auth.ldap is not None else None
        self.proxy = (
            TrustedProxy(auth.proxy_header, auth.trusted_proxies) if auth.proxy_header else None
        )
        self.app_passwords = AppPasswords(config.app_passwords)
        self.groups = Groups(config.groups, self.directory)
        """Group membership, for the access rules and anything else that decides by group."""
        self._verified: dict[bytes, _Verified] = {}
        self._failures: dict[str, int] = {}

    async def open(self) -> None:
        """Read the accounts (a broken htpasswd file stops the server at start)."""
        if self.accounts is not None:
            await self.accounts.refresh()

    def close(self) -> None:
        """Close the directory's connections."""
        if self.directory is not None:
            self.directory.close()

    def names(self) -> list[str]:
        """The accounts that can be listed (the htpasswd file's; a directory's users are
        not listed)."""
        return self.accounts.names() if self.accounts is not None else []

    async def login(self, request: web.Request) -> Login | None:
        """Who the request comes from; None when it carries no credentials.
        ``LoginFailed`` (after a delay when a password failed); ``DirectoryUnavailable``
        when the directory could not be asked."""
        if self.proxy is not None:
            try:
                user = self.proxy.user(request)
            except ProxyRefused:
                raise LoginFailed from None
            if user is not None:
                return Login(user, PROXY)
        given = credentials(request)
        if given is None:
            return None
        name, password = given
        if password is None:
            raise LoginFailed  # another scheme than Basic: nothing to check
        login = await self._verify(name, password)
        client = request.remote or ""
        if login is None:
            await self._fail(client, name)
            raise LoginFailed
        self._failures.pop(client, None)
        return login

    async def _verify(self, name: str, password: str) -> Login | None:
        key = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        now = time.monotonic()
        known = self._verified.get(key)
        if known is not None:
            if known.expires > now and await self._still_valid(known):
                return known.login
            self._verified.pop(key, None)
        found = await self._check(name, password)
        if found is None:
            return None
        login, token = found
        if len(self._verified) >= KEEP:
            self._verified = {k: v for k, v in self._verified.items() if v.expires > now}
        self._verified[key] = _Verified(now + REMEMBER, login, token)
        return login

    async def _still_valid(self, known: _Verified) -> bool:
        user, source = known.login.user, known.login.source
        if source == APP_PASSWORD:
            assert known.token is not None
            return await self.app_passwords.holds(user, known.token)
        if source == HTPASSWD and self.accounts is not None:
            await self.accounts.refresh()
            return self.accounts.hash_of(user) == known.token
        return True  # the directory is asked again when the login expires

    async def _check(self, name: str, password: str) -> tuple[Login, str | None] | None:
        accounts = self.accounts
        if accounts is not None:
            await accounts.refresh()
        if "%" in name and (accounts is None or accounts.hash_of(name) is None):
            # iOS 18.4 and later send "ann%40example.org" for "ann@example.org"
            # (mailcow-dockerized#6445, Radicale#1865).
            name = unquote(name)
        if apppasswords.looks_like(password):
            entry = await self.app_passwords.check(name, password)
            if entry is not None:
                if await self._account_exists(name):
                    return Login(name, APP_PASSWORD), entry.hashed
                log.warning("app password %r of %r refused: no such account", entry.name, name)
                return None
        stored = accounts.hash_of(name) if accounts is not None else None
        if stored is not None:
            if await offload(htpasswd.check_password, password, stored):
                return Login(name, HTPASSWD), stored
            return None
        if self.directory is not None:
            found = await self.directory.login(name, password)
            if found is not None:
                return Login(found.name, LDAP), None
        return None

    async def _account_exists(self, user: str) -> bool:
        """Whether an app password's user is still an account: in the htpasswd file or
        found in the directory (with neither, as behind a proxy only, any user is)."""
        if self.accounts is not None and self.accounts.hash_of(user) is not None:
            return True
        if self.directory is not None:
            found = await self.directory.find(user)
            return found is not None and found.name == user
        return self.accounts is None

    async def _fail(self, client: str, name: str) -> None:
        count = self._failures.get(client, 0) + 1
        self._failures[client] = count
        log.warning("failed login for %r from %s (%d in a row)", name, client, count)
        await asyncio.sleep(min(MAX_DELAY, 0.1 * 2 ** (count - 1)))
