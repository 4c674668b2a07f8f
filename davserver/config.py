"""The configuration: a TOML file (or the embedded default), checked before anything listens.

Every mistake is reported as ``FILE: KEY: what is wrong``. Relative paths in a file are
taken relative to that file's folder; in the embedded default, relative to the working
directory.
"""

from __future__ import annotations

import codecs
import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dulwich.refs import Ref, check_ref_format
from ldap3.core.exceptions import LDAPInvalidFilterError
from ldap3.operation.search import parse_filter

from .auth.htpasswd import valid_user_name

EMBEDDED = "<embedded default>"
APP_PASSWORDS_FILE = "app-passwords"
MOUNT_TYPES = ("webdav", "caldav", "static", "cgi", "wsgi", "fastcgi", "asgi", "status", "metrics")
# Mount types whose anonymous access is off unless the configuration opens it: what they
# show (requests under way, counts) is the operator's business.
PRIVATE_TYPES = ("status", "metrics")
LOG_FORMATS = ("text", "json")
BACKENDS = ("filesystem", "git")
_IDENTITY = re.compile(r"^[^<>\n]+ <[^<>\s]+>$")
_CHARSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")
_WSGI_APP = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$")
# Keys that only some mount types take (every other key applies to all of them).
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("backend", "repo", "branch", "author", "stale_lock_age", "depth_infinity",
         "gc_interval", "gc_loose_objects", "gc_pack_limit", "read_cache"),
        ("webdav", "caldav"),
    ),
    "root": ("webdav", "caldav", "static", "cgi", "fastcgi"),
    **dict.fromkeys(("quota", "user_quota", "user_quotas", "quota_rescan"), ("webdav",)),
    "default_user": ("caldav",),
    "max_resource_size": ("caldav",),
    "contacts": ("caldav",),
    "scheduling": ("caldav",),
    "principal_search": ("caldav",),
    **dict.fromkeys(
        ("listing", "mime_types", "cache_control", "precompressed", "gzip",
         "gzip_min_size", "gzip_types", "cache_ttl"),
        ("static",),
    ),
    "index": ("static", "fastcgi"),
    "timeout": ("cgi", "fastcgi"),
    "env": ("cgi", "fastcgi"),
    "x_sendfile": ("cgi", "wsgi", "fastcgi", "asgi"),
    "app": ("wsgi", "asgi"),
    "pythonpath": ("wsgi", "asgi"),
    "threads": ("wsgi",),
    **dict.fromkeys(("socket", "command", "processes", "pool_size"), ("fastcgi",)),
    "health_only": ("status",),
}  # fmt: skip
# What VAPID takes as its "sub" claim (RFC 8292 §2.1, as py-vapid checks it).
_CONTACT = re.compile(
    r"^(mailto:[^@\s]+@(localhost|[\w%-]+(\.[\w%-]+)+)|https://(localhost|[\w-]+\.[\w.-]+))$"
)
_FCGI_SOCKET = re.compile(r"^(unix:)?/.+$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
_MAIL = re.compile(r"^[^@\s<>\\\"(),:;\[\]]+@[A-Za-z0-9.-]+$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
SMTP_TLS = ("starttls", "tls", "none")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_GROUP = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
GroupTable = dict[str, tuple[str, ...]]
_MOUNT_PATH = re.compile(r"^/([A-Za-z0-9._~!$&'()*+,;=:@-]+(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*)?/?$")


class ConfigError(Exception):
    """A configuration mistake, naming the file, the key and the problem."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def parse_size(value: str) -> int:
    """Bytes of a size such as ``"10 GiB"``, ``"500 MB"`` or ``"4096"`` (binary units
    with ``i``, decimal without); ValueError for anything else."""
    found = _SIZE.match(value)
    if found is None:
        raise ValueError(f'{value!r} is not a size such as "10 GiB" or "500 MB"')
    unit = (found[2] or "").upper().removesuffix("B")
    prefix = unit.removesuffix("I")
    scale = 1024 ** (" KMGTP".index(prefix)) if unit.endswith("I") else _UNITS[prefix]
    return int(float(found[1]) * scale)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The ``[server]`` table."""

    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: Path = Path("state")
    access_log: bool = True
    max_xml_size: int = 1 << 20
    max_propfind_props: int = 1000
    shutdown_timeout: float = 30.0
    lock_timeout: int = 3600
    lock_timeout_max: int = 86400
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_size: int = 10 << 30
    max_request_line: int = 8190
    max_header_size: int = 8190
    max_headers: int = 100
    idle_timeout: float = 75.0
    read_timeout: float = 60.0
    max_connections: int = 1024
    workers: int = 0
    pin_cpu: bool = True
    max_connections_per_address: int = 128
    default_charset: str = "utf-8"


ACCESS_LEVELS = ("off", "read-only", "read-write")
PRINCIPAL_SEARCH = ("everyone", "authenticated", "self")
"""Who may find other users' principals (a caldav mount's ``principal_search``)."""


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """A mount's ``access`` table: what anonymous and authenticated requests may do, and
    whether each user's tree is theirs alone (see docs/security.md). Unset values (empty,
    None) take defaults that depend on the rest of the configuration: see ``resolved``."""

    anonymous: str = ""
    authenticated: str = ""
    owner_only: bool | None = None
    groups: dict[str, str] = field(default_factory=dict)
    """Group name → level: members of a group get at least that level."""

    def resolved(self, mount_type: str, accounts: bool) -> AccessConfig:
        """The rules with every default filled in: anonymous requests are off once there
        are accounts, and always on status and metrics mounts; authenticated ones
        read-write unless group rules say who may do more (then off); CalDAV trees are
        owner-only."""
        private = accounts or mount_type in PRIVATE_TYPES
        return AccessConfig(
            anonymous=self.anonymous or ("off" if private else "read-write"),
            authenticated=self.authenticated or ("off" if self.groups else "read-write"),
            owner_only=mount_type == "caldav" if self.owner_only is None else self.owner_only,
            groups=self.groups,
        )

    def level(self, user: str | None, groups: frozenset[str] = frozenset()) -> str:
        """The level of a request of ``user`` (None: anonymous), a member of ``groups``:
        the highest of ``authenticated`` and the levels of its groups."""
        if user is None:
            return self.anonymous
        levels = [self.authenticated, *(v for g, v in self.groups.items() if g in groups)]
        return max(levels, key=ACCESS_LEVELS.index)


GZIP_TYPES = (
    "text/*",
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
)
"""The media types a static mount compresses on the fly, unless ``gzip_types`` says."""


@dataclass(frozen=True, slots=True)
class MountConfig:
    """One ``[[mounts]]`` table."""

    path: str
    type: str
    backend: str = "filesystem"
    root: Path | None = None
    repo: Path | None = None
    branch: str = "main"
    author: str = "davserver <davserver@localhost>"
    stale_lock_age: float = 60.0
    gc_interval: float = 3600.0
    gc_loose_objects: int = 6700
    gc_pack_limit: int = 4
    depth_infinity: bool = False
    read_cache: int = 16 << 20
    default_user: str = "user"
    max_resource_size: int = 10 << 20
    contacts: bool = True
    scheduling: bool = True
    principal_search: str = "authenticated"
    error_pages: Path | None = None
    index: tuple[str, ...] | None = None
    listing: bool = False
    mime_types: dict[str, str] = field(default_factory=dict)
    cache_control: str = ""
    precompressed: bool = True
    gzip: bool = True
    gzip_min_size: int = 1024
    gzip_types: tuple[str, ...] = GZIP_TYPES
    cache_ttl: float = 1.0
    timeout: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    x_sendfile: tuple[Path, ...] = ()
    app: str = ""
    pythonpath: tuple[Path, ...] = ()
    threads: int = 8
    socket: str = ""
    command: tuple[str, ...] = ()
    processes: int = 1
    pool_size: int = 4
    health_only: bool = False
    access: AccessConfig = field(default_factory=AccessConfig)
    quota: str = ""
    user_quota: str = ""
    user_quotas: dict[str, str] = field(default_factory=dict)
    quota_rescan: float = 600.0

    @property
    def index_names(self) -> tuple[str, ...]:
        """``index``, or the default of the mount's type."""
        if self.index is not None:
            return self.index
        return ("index.php",) if self.type == "fastcgi" else ("index.html",)

    @property
    def prefix(self) -> str:
        """The URL prefix without its trailing slash ("" for a mount at /)."""
        return self.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The ``[log]`` table."""

    format: str = "text"
    file: Path | None = None
    access_file: Path | None = None


@dataclass(frozen=True, slots=True)
class LdapConfig:
    """The ``[auth] ldap`` table: logins checked against a directory (search, then bind as
    the user found), and its groups (see docs/security.md)."""

    url: str = ""
    bind_dn: str = ""
    bind_password: str = ""
    base: str = ""
    filter: str = "(uid={user})"
    tls: str = ""
    ca_file: Path | None = None
    user_attribute: str = "uid"
    group_base: str = ""
    group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={user}))"
    group_attribute: str = "cn"
    timeout: float = 5.0

    @property
    def security(self) -> str:
        """``tls`` with its default: ``ldaps`` for an ldaps:// URL, else ``starttls``."""
        return self.tls or ("ldaps" if self.url.lower().startswith("ldaps://") else "starttls")


LDAP_TLS = ("starttls", "ldaps", "off")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The ``[auth]`` table."""

    htpasswd: Path | None = None
    ldap: LdapConfig | None = None
    proxy_header: str = ""
    trusted_proxies: tuple[str, ...] = ()
    app_passwords: Path | None = None
    domain: str = "localhost"
    """The mail domain of the users the ``addresses`` table names no address for."""
    addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each user's mail addresses (calendar user addresses), the preferred one first."""

    @property
    def accounts(self) -> bool:
        """Whether any login source is configured (then anonymous access is off unless a
        mount opens it)."""
        return self.htpasswd is not None or self.ldap is not None or bool(self.proxy_header)


SHARE_LEVELS = ("read-only", "read-write")


@dataclass(frozen=True, slots=True)
class ShareConfig:
    """One ``[[shares]]`` table: a collection of one user's tree shared with users and
    groups (see docs/sharing.md)."""

    mount: str
    """The ``path`` of the (owner-only, webdav or caldav) mount."""
    path: str
    """The collection, relative to the mount: ``calendars/<user>/<calendar>``,
    ``addressbooks/<user>/<book>`` or ``<user>/<folder>``."""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    access: str = "read-only"


@dataclass(frozen=True, slots=True)
class PushConfig:
    """The ``[push]`` table: WebDAV-Push on every webdav and caldav mount (docs/push.md)."""

    enabled: bool = False
    allow_hosts: tuple[str, ...] = ()
    contact: str = "mailto:davserver@localhost"
    max_expiry: int = 7 * 86400
    ttl: int = 86400
    merge_window: float = 0.2
    poll_interval: float = 1.0
    max_subscriptions: int = 1000
    timeout: float = 10.0


MIN_PUSH_EXPIRY = 3 * 86400
"""The draft: a server lets subscriptions live at least three days."""


@dataclass(frozen=True, slots=True)
class StateConfig:
    """The ``[state]`` table: where the state that every process shares lives."""

    url: str | None = None
    """``postgresql://...``: the database several hosts share; None: SQLite files in
    ``[server] state_dir`` (the processes of one host)."""
    pool_size: int = 4
    uploads_dir: Path | None = None
    """Where the pieces of resumable uploads wait (None: ``state_dir/uploads``); a
    folder every host mounts, where several share the stores."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The ``[smtp]`` table: the mail server that carries invitations to attendees
    elsewhere (iMIP); none when ``host`` is empty."""

    host: str = ""
    port: int = 587
    tls: str = "starttls"
    username: str = ""
    password_file: Path | None = None
    sender: str = ""
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration and where it came from."""

    server: ServerConfig = field(default_factory=ServerConfig)
    mounts: tuple[MountConfig, ...] = ()
    source: str = EMBEDDED
    auth: AuthConfig = field(default_factory=AuthConfig)
    push: PushConfig = field(default_factory=PushConfig)
    state: StateConfig = field(default_factory=StateConfig)
    log: LogConfig = field(default_factory=LogConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    groups: GroupTable = field(default_factory=dict)
    """The ``[groups]`` table: group name → user names."""
    shares: tuple[ShareConfig, ...] = ()
    """The ``[[shares]]`` tables: fixed shares."""

    @property
    def app_passwords(self) -> Path:
        """The app passwords file: ``[auth] app_passwords``, else in the state folder."""
        return self.auth.app_passwords or self.server.state_dir / APP_PASSWORDS_FILE


def embedded_default(base: Path) -> Config:
    """What ``davserver serve`` runs without a file: WebDAV of ``./data`` at /, and CalDAV
    for one local user at /caldav/ with its calendars in ``./calendars``."""
    return Config(
        server=ServerConfig(state_dir=base / "state"),
        mounts=(
            MountConfig(path="/", type="webdav", root=base / "data"),
            MountConfig(path="/caldav", type="caldav", root=base / "calendars"),
        ),
    )


def _check_table(
    source: str, where: str, table: Any, cls: type, base: Path, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check a TOML table against a dataclass's fields; return the converted values."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where}: must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: {where}.{key}: unknown key (known keys: {known})")
        kind = fields[key].type
        if kind in _TABLES:
            out[key] = _check_table(source, f"{where}.{key}", value, _TABLES[kind], base)
            continue
        kind = kind.removesuffix(" | None")
        expected: dict[str, type | tuple[type, ...]] = {
            "str": str,
            "int": int,
            "bool": bool,
            "float": (int, float),
        }
        if kind == "dict[str, tuple[str, ...]]":
            value = _lists_by_name(source, f"{where}.{key}", value)
        elif kind.startswith("tuple["):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{source}: {where}.{key}: must be a list of strings")
            value = tuple((base / v).resolve() for v in value) if "Path" in kind else tuple(value)
        elif kind.startswith("dict["):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"{source}: {where}.{key}: must be a table of strings")
        elif "Path" in kind:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{source}: {where}.{key}: must be a path (a string)")
            value = (base / value).resolve()
        else:
            want = expected[kind]
            if not isinstance(value, want) or (kind != "bool" and isinstance(value, bool)):
                raise ConfigError(f"{source}: {where}.{key}: must be of type {kind}")
        out[key] = value
    for key in required:
        if key not in out:
            raise ConfigError(f"{source}: {where}.{key}: missing")
    return out


_TABLES: dict[str, type] = {"AccessConfig": AccessConfig, "LdapConfig | None": LdapConfig}
"""Fields that hold a table of their own, checked against their dataclass."""


def _lists_by_name(source: str, where: str, value: Any) -> dict[str, tuple[str, ...]]:
    """A table of lists of strings (each user's mail addresses)."""
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) and x for x in v) for v in value.values()
    ):
        raise ConfigError(f"{source}: {where}: must be a table of lists of strings")
    return {name: tuple(v) for name, v in value.items()}


def _check_addresses(source: str, auth: AuthConfig) -> None:
    """The mail domain and each user's calendar user addresses."""
    if not _DOMAIN.match(auth.domain):
        raise ConfigError(f"{source}: auth.domain: {auth.domain!r} is not a domain name")
    owners: dict[str, str] = {}
    for user, mails in auth.addresses.items():
        if not valid_user_name(user):
            raise ConfigError(f"{source}: auth.addresses.{user}: not a usable user name")
        for mail in mails:
            if not _MAIL.match(mail):
                raise ConfigError(
                    f"{source}: auth.addresses.{user}: {mail!r} is not a mail address "
                    "(name@domain, without mailto:)"
                )
            other = owners.setdefault(mail.lower(), user)
            if other != user:
                raise ConfigError(
                    f"{source}: auth.addresses.{user}: {mail!r} is {other}'s address already"
                )


def _check_smtp(source: str, smtp: SmtpConfig) -> None:
    if smtp.tls not in SMTP_TLS:
        raise ConfigError(f"{source}: smtp.tls: {smtp.tls!r} is not one of {', '.join(SMTP_TLS)}")
    if not 0 < smtp.port <= 65535:
        raise ConfigError(f"{source}: smtp.port: {smtp.port} is not a TCP port")
    if smtp.timeout <= 0:
        raise ConfigError(f"{source}: smtp.timeout: must be more than 0 seconds")
    if smtp.host and not _MAIL.match(smtp.sender):
        raise ConfigError(
            f"{source}: smtp.sender: {smtp.sender!r} must be the mail address invitations "
            "are sent from (name@domain)"
        )
    if smtp.password_file is not None and not smtp.username:
        raise ConfigError(f"{source}: smtp.password_file: needs a username")
    if smtp.password_file is not None and not smtp.password_file.is_file():
        raise ConfigError(f"{source}: smtp.password_file: {smtp.password_file} is not a file")


def _check_mount(source: str, where: str, m: MountConfig) -> None:
    if not _MOUNT_PATH.match(m.path):
        raise ConfigError(
            f"{source}: {where}.path: {m.path!r} must start with / and use plain URL characters"
        )
    if m.type not in MOUNT_TYPES:
        raise ConfigError(
            f"{source}: {where}.type: {m.type!r} is not one of {', '.join(MOUNT_TYPES)}"
        )
    if m.backend not in BACKENDS:
        raise ConfigError(
            f"{source}: {where}.backend: {m.backend!r} is not one of {', '.join(BACKENDS)}"
        )
    stored_in_folder = m.type in ("webdav", "caldav", "static", "cgi") and m.backend == "filesystem"
    if stored_in_folder and m.root is None:
        raise ConfigError(f"{source}: {where}.root: missing (the folder to serve)")
    if m.root is not None and m.root.exists() and not m.root.is_dir():
        raise ConfigError(f"{source}: {where}.root: {m.root} is not a folder")
    if m.type in ("wsgi", "asgi") and not _WSGI_APP.match(m.app):
        raise ConfigError(
            f"{source}: {where}.app: {m.app!r} is not a 'package.module:callable' name"
        )
    lows = (("threads", 1), ("timeout", 0.001), ("gzip_min_size", 0), ("cache_ttl", 0),
            ("stale_lock_age", 1), ("processes", 1), ("pool_size", 1), ("gc_interval", 0),
            ("gc_loose_objects", 1), ("gc_pack_limit", 1), ("read_cache", 0))  # fmt: skip
    for key, low in lows:
        if getattr(m, key) < low:
            raise ConfigError(f"{source}: {where}.{key}: must be at least {low}")
    if m.error_pages is not None and not m.error_pages.exists():
        raise ConfigError(f"{source}: {where}.error_pages: {m.error_pages} does not exist")
    if m.type == "caldav" and not valid_user_name(m.default_user):
        raise ConfigError(
            f"{source}: {where}.default_user: {m.default_user!r} is not a usable user name "
            "(no colon, slash, space or control character, no dot first)"
        )
    if m.principal_search not in PRINCIPAL_SEARCH:
        raise ConfigError(
            f"{source}: {where}.principal_search: {m.principal_search!r} is not one of "
            f"{', '.join(PRINCIPAL_SEARCH)}"
        )
    sizes = {"quota": m.quota, "user_quota": m.user_quota}
    sizes.update({f"user_quotas.{k}": v for k, v in m.user_quotas.items()})
    for key, value in sizes.items():
        if value:
            try:
                parse_size(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: {where}.{key}: {exc}") from None
    if m.quota_rescan <= 0:
        raise ConfigError(f"{source}: {where}.quota_rescan: must be more than 0 seconds")
    if m.backend == "filesystem" and m.repo is not None:
        raise ConfigError(f"{source}: {where}.repo: only the git backend uses it (use root)")
    if m.backend == "git":
        _check_git(source, where, m)
    if m.type == "fastcgi":
        _check_fastcgi(source, where, m)


def _check_fastcgi(source: str, where: str, m: MountConfig) -> None:
    if not m.socket and not m.command:
        raise ConfigError(
            f"{source}: {where}.socket: missing (where the FastCGI application listens, "
            'e.g. "/run/php/php-fpm.sock" or "127.0.0.1:9000"; or give a command to start it)'
        )
    if m.socket and m.command:
        raise ConfigError(
            f"{source}: {where}.socket: not with command (the server makes the socket of "
            "the processes it starts)"
        )
    if m.socket and not _FCGI_SOCKET.match(m.socket):
        raise ConfigError(
            f"{source}: {where}.socket: {m.socket!r} is neither a path (/..., unix:...) "
            "nor host:port"
        )
    if m.root is not None and not m.root.is_dir():
        raise ConfigError(f"{source}: {where}.root: {m.root} is not a folder")


def _check_git(source: str, where: str, m: MountConfig) -> None:
    if m.repo is None:
        raise ConfigError(f"{source}: {where}.repo: missing (the git repository to serve)")
    if m.root is not None:
        raise ConfigError(f"{source}: {where}.root: the git backend does not use it (use repo)")
    if not check_ref_format(Ref(b"refs/heads/" + m.branch.encode())):
        raise ConfigError(f"{source}: {where}.branch: {m.branch!r} is not a valid branch name")
    if not _IDENTITY.match(m.author):
        raise ConfigError(
            f'{source}: {where}.author: {m.author!r} must look like "Name <email@host>"'
        )


def _check_type_keys(source: str, where: str, values: dict[str, Any]) -> None:
    """Refuse a key that the mount's type does not take."""
    kind = values.get("type")
    if kind not in MOUNT_TYPES:
        return  # _check_mount names the bad type
    for key in values:
        types = TYPE_KEYS.get(key)
        if types is not None and kind not in types:
            raise ConfigError(
                f"{source}: {where}.{key}: not an option of {kind} mounts "
                f"(only of {', '.join(types)})"
            )


def _check_server(source: str, server: ServerConfig) -> None:
    limits = ("lock_timeout", "lock_timeout_max", "max_xml_size", "max_propfind_props",
              "max_body_size", "max_request_line", "max_header_size", "max_headers",
              "max_connections", "max_connections_per_address")  # fmt: skip
    for key in limits:
        if getattr(server, key) < 1:
            raise ConfigError(f"{source}: server.{key}: must be at least 1")
    if server.workers < 0:
        raise ConfigError(f"{source}: server.workers: must be 0 (one per core) or more")
    for key in ("idle_timeout", "read_timeout"):
        if getattr(server, key) <= 0:
            raise ConfigError(f"{source}: server.{key}: must be more than 0 seconds")
    if server.default_charset and not _known_charset(server.default_charset):
        raise ConfigError(
            f"{source}: server.default_charset: {server.default_charset!r} is not a known "
            'character encoding (e.g. "utf-8"; "" sends none)'
        )
    if (server.tls_cert is None) != (server.tls_key is None):
        raise ConfigError(f"{source}: server.tls_key: tls_cert and tls_key go together")
    for key in ("tls_cert", "tls_key"):
        path = getattr(server, key)
        if path is not None and not path.is_file():
            raise ConfigError(f"{source}: server.{key}: {path} is not a file")


def _check_push(source: str, push: PushConfig) -> None:
    if push.max_expiry < MIN_PUSH_EXPIRY:
        raise ConfigError(
            f"{source}: push.max_expiry: must be at least {MIN_PUSH_EXPIRY} seconds (three "
            "days, as the WebDAV-Push draft requires)"
        )
    lows = (("ttl", 0), ("merge_window", 0), ("max_subscriptions", 1))
    for key, low in lows:
        if getattr(push, key) < low:
            raise ConfigError(f"{source}: push.{key}: must be at least {low}")
    for key in ("poll_interval", "timeout"):
        if getattr(push, key) <= 0:
            raise ConfigError(f"{source}: push.{key}: must be more than 0 seconds")
    if not _CONTACT.match(push.contact):
        raise ConfigError(
            f"{source}: push.contact: {push.contact!r} must be a mailto: address or an "
            "https: URL of a host (how push services reach the server's operator)"
        )


def _check_state(source: str, state: StateConfig) -> None:
    if state.url is not None and not state.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{source}: state.url: must be a PostgreSQL URL (postgresql://user@host/database)"
        )
    if state.pool_size < 2:
        raise ConfigError(
            f"{source}: state.pool_size: must be at least 2 (a calendar write holds one "
            "connection and uses another)"
        )


def _known_charset(name: str) -> bool:
    """Whether ``name`` is a plain charset name (a header token) Python knows."""
    if not _CHARSET.match(name):
        return False
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _check_access(
    source: str, where: str, m: MountConfig, accounts: bool, groups: GroupTable, ldap: bool
) -> None:
    given = m.access
    for key in ("anonymous", "authenticated"):
        value = getattr(given, key)
        if value and value not in ACCESS_LEVELS:
            levels = ", ".join(ACCESS_LEVELS)
            raise ConfigError(f"{source}: {where}.access.{key}: {value!r} is not one of {levels}")
    access = given.resolved(m.type, accounts)
    if m.type in PRIVATE_TYPES and not given.anonymous and not accounts:
        raise ConfigError(
            f"{source}: {where}.access.anonymous: a {m.type} mount is not public by default, "
            "and without accounts ([auth] htpasswd, ldap or proxy_header) nobody could see it: "
            'add accounts, or open it with access = { anonymous = "read-only" }'
        )
    if access.anonymous == "off" and not accounts:
        raise ConfigError(
            f'{source}: {where}.access.anonymous: "off" needs accounts ([auth] htpasswd, '
            "ldap or proxy_header): nobody could get in"
        )
    if access.owner_only and m.type not in ("webdav", "caldav"):
        raise ConfigError(f"{source}: {where}.access.owner_only: only webdav and caldav trees")
    if access.owner_only and m.type == "webdav" and not accounts:
        raise ConfigError(
            f"{source}: {where}.access.owner_only: needs accounts ([auth] htpasswd, ldap or "
            "proxy_header): the trees belong to users"
        )
    _check_group_rules(source, f"{where}.access.groups", access, accounts, groups, ldap)


def _check_group_rules(
    source: str, where: str, access: AccessConfig, accounts: bool, groups: GroupTable, ldap: bool
) -> None:
    """Each group rule names a group there can be, with a level that gives its members
    more than every authenticated user has."""
    if access.groups and not accounts:
        raise ConfigError(f"{source}: {where}: needs accounts (groups are of users)")
    for name, level in access.groups.items():
        if level not in ACCESS_LEVELS:
            levels = ", ".join(ACCESS_LEVELS)
            raise ConfigError(f"{source}: {where}.{name}: {level!r} is not one of {levels}")
        if name not in groups and not ldap:
            raise ConfigError(
                f"{source}: {where}.{name}: no such group (define it in [groups], or "
                "configure [auth] ldap for directory groups)"
            )
        if ACCESS_LEVELS.index(level) <= ACCESS_LEVELS.index(access.authenticated):
            raise ConfigError(
                f"{source}: {where}.{name}: {level!r} gives nothing more than "
                f'authenticated = {access.authenticated!r} (lower authenticated, e.g. to "off")'
            )


def _check_auth(source: str, auth: AuthConfig) -> None:
    if bool(auth.proxy_header) != bool(auth.trusted_proxies):
        raise ConfigError(
            f"{source}: auth.trusted_proxies: proxy_header and trusted_proxies go together "
            "(the header is believed only from those addresses)"
        )
    header = auth.proxy_header
    if header and not _HEADER.match(header):
        raise ConfigError(f"{source}: auth.proxy_header: {header!r} is not a header name")
    if header.lower() in ("authorization", "host", "content-length"):
        raise ConfigError(f"{source}: auth.proxy_header: {header!r} cannot carry a user")
    for i, net in enumerate(auth.trusted_proxies):
        try:
            ipaddress.ip_network(net)
        except ValueError as exc:
            raise ConfigError(f"{source}: auth.trusted_proxies[{i}]: {exc}") from None
    if auth.ldap is not None:
        _check_ldap(source, auth.ldap)
    _check_addresses(source, auth)


def _check_ldap(source: str, ldap: LdapConfig) -> None:
    where = f"{source}: auth.ldap"
    scheme = ldap.url.lower().partition("://")[0]
    if scheme not in ("ldap", "ldaps") or not ldap.url.partition("://")[2].strip("/"):
        raise ConfigError(f"{where}.url: {ldap.url!r} must be ldap://HOST[:PORT] or ldaps://...")
    if not ldap.base:
        raise ConfigError(f"{where}.base: missing (where the users are searched)")
    if ldap.tls and ldap.tls not in LDAP_TLS:
        raise ConfigError(f"{where}.tls: {ldap.tls!r} is not one of {', '.join(LDAP_TLS)}")
    if (ldap.security == "ldaps") != (scheme == "ldaps"):
        raise ConfigError(f'{where}.tls: "ldaps" and an ldaps:// URL go together')
    if "{user}" not in ldap.filter or not _valid_filter(ldap.filter):
        raise ConfigError(f"{where}.filter: {ldap.filter!r} must be an LDAP filter with {{user}}")
    if not _valid_filter(ldap.group_filter):
        raise ConfigError(f"{where}.group_filter: {ldap.group_filter!r} is not an LDAP filter")
    if bool(ldap.bind_dn) != bool(ldap.bind_password):
        raise ConfigError(f"{where}.bind_password: bind_dn and bind_password go together")
    if ldap.timeout <= 0:
        raise ConfigError(f"{where}.timeout: must be more than 0 seconds")
    if ldap.ca_file is not None and not ldap.ca_file.is_file():
        raise ConfigError(f"{where}.ca_file: {ldap.ca_file} is not a file")
    for key in ("user_attribute", "group_attribute"):
        if not _ATTRIBUTE.match(getattr(ldap, key)):
            raise ConfigError(f"{where}.{key}: {getattr(ldap, key)!r} is not an attribute name")


def _valid_filter(text: str) -> bool:
    """Whether ``text``, its {user} and {dn} filled in, is an LDAP search filter."""
    example = text.replace("{user}", "ann").replace("{dn}", "uid=ann,dc=example")
    try:
        parse_filter(example, None, True, True, None, False)
    except LDAPInvalidFilterError:
        return False
    return True


def _check_groups(source: str, table: Any) -> GroupTable:
    """The ``[groups]`` table: each group a list of user names."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: groups: must be a table (name = [users])")
    groups: GroupTable = {}
    for name, users in table.items():
        if not _GROUP.match(name):
            raise ConfigError(f"{source}: groups.{name!r}: not a usable group name")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ConfigError(f"{source}: groups.{name}: must be a list of user names")
        for user in users:
            if not valid_user_name(user):
                raise ConfigError(f"{source}: groups.{name}: {user!r} is not a usable user name")
        groups[name] = tuple(users)
    return groups


def parse(data: dict[str, Any], source: str, base: Path) -> Config:
    """Check a parsed TOML document and build the configuration."""
    unknown = set(data) - {
        "server",
        "mounts",
        "auth",
        "groups",
        "push",
        "state",
        "log",
        "smtp",
        "shares",
    }
    if unknown:
        raise ConfigError(
            f"{source}: {sorted(unknown)[0]}: unknown table "
            "(use server, auth, groups, push, state, log, smtp, mounts, shares)"
        )
    log = LogConfig(**_check_table(source, "log", data.get("log", {}), LogConfig, base))
    if log.format not in LOG_FORMATS:
        raise ConfigError(
            f"{source}: log.format: {log.format!r} is not one of {', '.join(LOG_FORMATS)}"
        )
    auth_values = _check_table(source, "auth", data.get("auth", {}), AuthConfig, base)
    if "ldap" in auth_values:
        auth_values["ldap"] = LdapConfig(**auth_values["ldap"])
    auth = AuthConfig(**auth_values)
    _check_auth(source, auth)
    groups = _check_groups(source, data.get("groups", {}))
    state = StateConfig(**_check_table(source, "state", data.get("state", {}), StateConfig, base))
    _check_state(source, state)
    smtp = SmtpConfig(**_check_table(source, "smtp", data.get("smtp", {}), SmtpConfig, base))
    _check_smtp(source, smtp)
    server = ServerConfig(
        **_check_table(source, "server", data.get("server", {}), ServerConfig, base)
    )
    if not 0 <= server.port <= 65535:
        raise ConfigError(f"{source}: server.port: {server.port} is not a TCP port")
    _check_server(source, server)
    push = PushConfig(**_check_table(source, "push", data.get("push", {}), PushConfig, base))
    _check_push(source, push)
    raw_mounts = data.get("mounts", [])
    if not isinstance(raw_mounts, list) or not raw_mounts:
        raise ConfigError(f"{source}: mounts: at least one [[mounts]] table is needed")
    mounts: list[MountConfig] = []
    for i, table in enumerate(raw_mounts):
        where = f"mounts[{i}]"
        values = _check_table(source, where, table, MountConfig, base, ("path", "type"))
        _check_type_keys(source, where, values)
        if "access" in values:
            values["access"] = AccessConfig(**values["access"])
        mount = MountConfig(**values)
        _check_mount(source, where, mount)
        _check_access(source, where, mount, auth.accounts, groups, auth.ldap is not None)
        if any(m.prefix == mount.prefix for m in mounts):
            raise ConfigError(f"{source}: {where}.path: {mount.path!r} is mounted twice")
        mounts.append(mount)
    shares = _check_shares(source, data.get("shares", []), mounts, auth, groups)
    return Config(
        server=server,
        mounts=tuple(mounts),
        source=source,
        auth=auth,
        push=push,
        groups=groups,
        state=state,
        log=log,
        smtp=smtp,
        shares=shares,
    )


def _check_shares(
    source: str, raw: Any, mounts: list[MountConfig], auth: AuthConfig, groups: GroupTable
) -> tuple[ShareConfig, ...]:
    """The ``[[shares]]`` tables: each names a collection of a user's tree in an
    owner-only DAV mount, sharees there can be, and a level."""
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: shares: must be an array of tables ([[shares]])")
    found: list[ShareConfig] = []
    for i, table in enumerate(raw):
        where = f"shares[{i}]"
        share = ShareConfig(
            **_check_table(source, where, table, ShareConfig, Path(), ("mount", "path"))
        )
        prefix = share.mount.rstrip("/")
        mount = next((m for m in mounts if m.prefix == prefix), None)
        if mount is None:
            raise ConfigError(f"{source}: {where}.mount: no mount has the path {share.mount!r}")
        if not mount.access.resolved(mount.type, auth.accounts).owner_only:
            raise ConfigError(
                f"{source}: {where}.mount: {share.mount!r} is not an owner-only webdav or "
                "caldav tree (everyone there reaches everything already)"
            )
        _check_share_path(source, where, share.path, mount.type)
        if share.access not in SHARE_LEVELS:
            levels = ", ".join(SHARE_LEVELS)
            raise ConfigError(f"{source}: {where}.access: {share.access!r} is not one of {levels}")
        if not share.users and not share.groups:
            raise ConfigError(f"{source}: {where}: name users or groups to share with")
        for user in share.users:
            if not valid_user_name(user):
                raise ConfigError(f"{source}: {where}.users: {user!r} is not a usable user name")
        for group in share.groups:
            if group not in groups and auth.ldap is None:
                raise ConfigError(
                    f"{source}: {where}.groups: {group!r}: no such group (define it in "
                    "[groups], or configure [auth] ldap for directory groups)"
                )
        found.append(dataclasses.replace(share, path=share.path.strip("/")))
    return tuple(found)


def _check_share_path(source: str, where: str, path: str, mount_type: str) -> None:
    """A shared collection lies in a user's tree: ``calendars/<user>/<name>`` or
    ``addressbooks/<user>/<name>`` in a caldav mount, ``<user>/<folder>...`` in a webdav
    one."""
    parts = path.strip("/").split("/")
    if any(p in ("", ".", "..") or not _GROUP.match(p) for p in parts):
        raise ConfigError(f"{source}: {where}.path: {path!r} is not a plain path")
    if mount_type == "caldav":
        if len(parts) != 3 or parts[0] not in ("calendars", "addressbooks"):
            raise ConfigError(
                f"{source}: {where}.path: {path!r} must be calendars/<user>/<calendar> or "
                "addressbooks/<user>/<book>"
            )
    elif len(parts) < 2:
        raise ConfigError(
            f"{source}: {where}.path: {path!r} must be a folder in a user's tree (<user>/<folder>)"
        )


def load(path: Path) -> Config:
    """Read and check a TOML configuration file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data, str(path), path.resolve().parent)


def override(
    config: Config,
    *,
    host: str | None,
    port: int | None,
    root: Path | None,
    workers: int | None = None,
) -> Config:
    """Apply the command line's --host, --port, --root and --workers."""
    server = config.server
    if workers is not None:
        if workers < 0:
            raise ConfigError("--workers: must be 0 (one per core) or more")
        server = dataclasses.replace(server, workers=workers)
    if host is not None:
        server = dataclasses.replace(server, host=host)
    if port is not None:
        server = dataclasses.replace(server, port=port)
    mounts = list(config.mounts)
    if root is not None:
        for i, m in enumerate(mounts):
            if m.type == "webdav" and m.backend == "filesystem":
                mounts[i] = dataclasses.replace(m, root=root.resolve())
                break
        else:
            raise ConfigError(f"{config.source}: --root: no filesystem WebDAV mount to apply it to")
    return dataclasses.replace(config, server=server, mounts=tuple(mounts))
