"""Logins and groups from an LDAP directory (ldap3).

A login searches the user with the service account (``bind_dn``, or anonymously), then
binds as the entry found with the password given: the directory decides (a locked or
expired account fails its bind). The user's groups are searched in the same call.

Connections are kept in two small pools, one bound as the service account for searches,
one for the users' binds, so a login costs no TCP or TLS handshake. ldap3 blocks, so
every call runs on the shared worker threads (``runtime.offload``), at most ``CALLS`` at
once: a directory that stops answering holds a few threads until ``timeout``, never all
of them. A directory that cannot be reached (refused, timed out, TLS failed, service
bind refused) raises ``DirectoryUnavailable``: the request gets 503, not 401, and the next
one tries again with new connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from davserver.config import LdapConfig
from davserver.runtime.threads import offload

from .htpasswd import valid_user_name

_T = TypeVar("_T")
CALLS = 2
"""LDAP calls under way at once (each holds a worker thread while it waits)."""
POOL = 4
"""Idle connections kept in each pool."""
GROUPS_TTL = 60.0
"""Seconds the groups of a user, or the members of a group, are kept."""
_MEMBER_ATTRIBUTES = ("member", "uniqueMember", "memberUid")
_INVALID_CREDENTIALS = 49
# Result codes that mean "the directory cannot answer now", not "no".
_UNAVAILABLE = {51, 52, 53, 80}


class DirectoryUnavailable(Exception):
    """The directory could not be asked; the message says why (for the log)."""


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user found in the directory."""

    name: str
    dn: str
    groups: frozenset[str]


class _Pool:
    """Idle connections made by ``make``; a connection that failed, or that ``usable``
    no longer takes, is dropped."""

    def __init__(
        self, make: Callable[[], Connection], usable: Callable[[Connection], bool]
    ) -> None:
        self._make = make
        self._usable = usable
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self, fresh: bool = False) -> Iterator[Connection]:
        conn = None
        if not fresh:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
        if conn is not None and not self._usable(conn):
            _close(conn)
            conn = None
        if conn is None:
            conn = self._make()
        try:
            yield conn
        except BaseException:
            _close(conn)
            raise
        with self._lock:
            if len(self._idle) < POOL:
                self._idle.append(conn)
                return
        _close(conn)

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()


class Directory:
    """An LDAP directory: who may log in, and the groups of its users."""

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self._server: Server | None = None  # made on a worker thread: Tls reads the CA file
        self._server_lock = threading.Lock()
        self._searches = _Pool(
            lambda: self._connect(config.bind_dn, config.bind_password), self._usable
        )
        self._binds = _Pool(lambda: self._connect(None, None), self._usable)
        self._calls = asyncio.Semaphore(CALLS)
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    # -- the blocking side (worker threads) -----------------------------------------

    def _server_of(self) -> Server:
        with self._server_lock:
            if self._server is None:
                config = self.config
                tls = Tls(
                    validate=ssl.CERT_REQUIRED,
                    ca_certs_file=str(config.ca_file) if config.ca_file else None,
                    sni=urlsplit(config.url).hostname,
                )
                self._server = Server(
                    config.url,
                    use_ssl=config.security == "ldaps",
                    tls=tls,
                    connect_timeout=config.timeout,
                    get_info=NONE,
                )
            return self._server

    def _connect(self, dn: str | None, password: str | None) -> Connection:
        conn = Connection(
            self._server_of(),
            user=dn or None,
            password=password or None,
            authentication=SIMPLE if dn else None,
            receive_timeout=math.ceil(self.config.timeout),  # ldap3 packs it as an integer
            raise_exceptions=False,
            auto_referrals=False,
            read_only=True,
        )
        try:
            conn.open()
            if self.config.security == "starttls":
                conn.start_tls()
            if dn and not conn.bind():
                raise DirectoryUnavailable(f"the service account's bind was refused: {_why(conn)}")
        except BaseException:
            _close(conn)
            raise
        return conn

    def _usable(self, conn: Connection) -> bool:
        # ldap3 opens a closed connection again by itself at the next bind, without
        # StartTLS: such a connection must never be used again.
        return not conn.closed and (self.config.security != "starttls" or conn.tls_started)

    def _retrying(self, pool: _Pool, work: Callable[[Connection], _T]) -> _T:
        """``work`` on a pooled connection; a failed connection (a restarted directory
        closes them) is replaced once by a new one."""
        try:
            with pool.connection() as conn:
                return work(conn)
        except (LDAPException, OSError):
            pool.clear()
        try:
            with pool.connection(fresh=True) as conn:
                return work(conn)
        except (LDAPException, OSError) as exc:
            # ldap3's Server remembers an address that failed as unavailable: the next
            # request starts with a new one.
            with self._server_lock:
                self._server = None
            raise DirectoryUnavailable(f"{self.config.url}: {type(exc).__name__}: {exc}") from exc

    def _search(self, base: str, query: str, attributes: list[str], scope: Any = SUBTREE) -> Any:
        def work(conn: Connection) -> Any:
            conn.search(base, query, scope, attributes=attributes, size_limit=1000)
            code = conn.result.get("result", 0)
            if code in _UNAVAILABLE:
                raise DirectoryUnavailable(f"{self.config.url}: {_why(conn)}")
            if code not in (0, 4, 32):  # success, size limit exceeded, no such object
                raise DirectoryUnavailable(f"{self.config.url}: search refused: {_why(conn)}")
            return [e for e in conn.response or () if e.get("type") == "searchResEntry"]

        return self._retrying(self._searches, work)

    def _entry(self, name: str) -> tuple[str, str] | None:
        """The DN and user name of the one entry the filter finds for ``name``."""
        config = self.config
        query = config.filter.replace("{user}", escape_filter_chars(name))
        found = self._search(config.base, query, [config.user_attribute])
        if len(found) != 1:
            return None  # nobody, or a filter that is not specific enough
        entry = found[0]
        values = entry["attributes"].get(config.user_attribute)
        value = values[0] if isinstance(values, list) and values else values
        if not isinstance(value, str) or not valid_user_name(value):
            return None
        return entry["dn"], value

    def _group_names(self, dn: str, name: str) -> frozenset[str]:
        config = self.config
        query = config.group_filter.replace("{dn}", escape_filter_chars(dn)).replace(
            "{user}", escape_filter_chars(name)
        )
        found = self._search(config.group_base or config.base, query, [config.group_attribute])
        names = (_first(e["attributes"].get(config.group_attribute)) for e in found)
        return frozenset(n for n in names if n)

    def _login(self, name: str, password: str) -> DirectoryUser | None:
        entry = self._entry(name)
        if entry is None:
            return None
        dn, user = entry

        def bind(conn: Connection) -> bool:
            if conn.rebind(user=dn, password=password, authentication=SIMPLE):
                return True
            code = conn.result.get("result", 0)
            if code in _UNAVAILABLE:
                raise DirectoryUnavailable(f"{self.config.url}: {_why(conn)}")
            return False

        if not self._retrying(self._binds, bind):
            return None
        return DirectoryUser(user, dn, self._group_names(dn, user))

    def _find(self, name: str) -> DirectoryUser | None:
        entry = self._entry(name)
        if entry is None:
            return None
        dn, user = entry
        return DirectoryUser(user, dn, self._group_names(dn, user))

    def _group_members(self, group: str) -> frozenset[str]:
        config = self.config
        query = f"({config.group_attribute}={escape_filter_chars(group)})"
        found = self._search(config.group_base or config.base, query, list(_MEMBER_ATTRIBUTES))
        names: set[str] = set()
        for entry in found:
            attributes = entry["attributes"]
            names.update(v for v in _values(attributes.get("memberUid")) if valid_user_name(v))
            dns = [*_values(attributes.get("member")), *_values(attributes.get("uniqueMember"))]
            for dn in dns:
                for user in self._search(dn, "(objectClass=*)", [config.user_attribute], BASE):
                    value = _first(user["attributes"].get(config.user_attribute))
                    if valid_user_name(value):
                        names.add(value)
        return frozenset(names)

    # -- the event loop side ----------------------------------------------------------

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        async with self._calls:
            return await offload(fn, *args)

    async def login(self, name: str, password: str) -> DirectoryUser | None:
        """The user ``name`` if the directory takes ``password`` for it (None: no such
        user, or the bind was refused); its groups are remembered for ``GROUPS_TTL``."""
        if not password:
            return None  # an empty password is an anonymous bind, which always succeeds
        found = await self._call(self._login, name, password)
        if found is not None:
            self._groups[found.name] = (time.monotonic() + GROUPS_TTL, found.groups)
        return found

    async def find(self, name: str) -> DirectoryUser | None:
        """The user ``name`` if the filter finds it (no password checked)."""
        found = await self._call(self._find, name)
        if found is not None:
            self._groups[found.name] = (time.monotonic() + GROUPS_TTL, found.groups)
        return found

    async def groups_of(self, name: str) -> frozenset[str]:
        """The directory groups of user ``name`` (none when the filter does not find it)."""
        cached = self._groups.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await self.find(name)
        return found.groups if found is not None else frozenset()

    async def members(self, group: str) -> frozenset[str]:
        """The user names of the members of directory group ``group``."""
        cached = self._members.get(group)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        names = await self._call(self._group_members, group)
        self._members[group] = (time.monotonic() + GROUPS_TTL, names)
        return names

    def close(self) -> None:
        """Close the idle connections."""
        self._searches.clear()
        self._binds.clear()


def _why(conn: Connection) -> str:
    result = conn.result or {}
    what = f"{result.get('description', '?')} ({result.get('result', '?')})"
    return f"{what} {result.get('message', '')}".strip()


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def _first(value: Any) -> str:
    values = _values(value)
    return values[0] if values else ""
