"""The aiohttp application: mounts routed by longest prefix, access decided before any
mount code runs, one error net for all."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

from davserver.backends.base import Storage
from davserver.backends.filesystem import FilesystemStorage
from davserver.backends.git import GitStorage

from . import access, serverroot
from .auth.basic import challenge
from .auth.ldap import DirectoryUnavailable
from .auth.logins import LoginFailed, Logins
from .caldav.feature import CalDav, default_calendars
from .caldav.services import CalDavSettings
from .caldav.store.index import CalendarIndex, ItemIndex
from .caldav.store.layout import ADDRESSBOOKS, CALENDARS, CalendarStore, Homes
from .caldav.store.pg_index import PgCalendarIndex
from .carddav.feature import CardDav, default_addressbooks
from .carddav.services import CardDavSettings
from .config import AccessConfig, Config, MountConfig, PushConfig, SmtpConfig, parse_size
from .dav.context import DavSettings
from .dav.core import Checksums, FileManager, Locking, PartialUpdate, Quota, WebDav
from .dav.deadprops import PROPS_CODEC
from .dav.features import Discovery, Feature
from .dav.identity import AUTH_SOURCE, GRANTS, USER
from .dav.quota import QuotaLimits
from .events import LocalBus
from .locks.manager import LockManager, LockStore
from .locks.pg_store import PgLockStore
from .locks.sqlite_store import SQLiteLockStore
from .mounts import DISPATCH, MOUNT_PREFIX, Mount
from .mounts.asgi import AsgiMount, AsgiSettings
from .mounts.cgi import CgiMount, CgiSettings
from .mounts.dav import DavMount
from .mounts.errorpages import ErrorPages
from .mounts.fastcgi import FastCgiMount, FastCgiSettings
from .mounts.metrics import MetricsMount
from .mounts.static import StaticMount, StaticSettings
from .mounts.status import StatusMount
from .mounts.wsgi import WsgiMount, WsgiSettings
from .push.feature import Entitled, Push
from .push.settings import PushSettings
from .push.targets import CalendarTarget, FolderTarget
from .runtime import metrics, requestid
from .runtime.threads import offload
from .scheduling.directory import Directory
from .scheduling.feature import Scheduling
from .scheduling.mail import Mailer, SmtpSettings
from .scheduling.names import BOXES
from .scheduling.pg_records import PgRecords
from .scheduling.records import Records, SQLiteRecords
from .state import scoreboard
from .state.changelog import ChangeLog, SQLiteChangeLog
from .state.checksums import ChecksumStore, SQLiteChecksums
from .state.generations import FileGenerations, Generations
from .state.leaders import FileLeaders, Leaders
from .state.mutex import FileMutexes, Mutexes
from .state.postgres.changelog import PgChangeLog
from .state.postgres.checksums import PgChecksums
from .state.postgres.database import PgDatabase
from .state.postgres.generations import PgGenerations
from .state.postgres.leaders import PgLeaders
from .state.postgres.mutex import PgMutexes
from .state.postgres.quota import PgQuota
from .state.postgres.secrets import PgSecrets
from .state.postgres.shares import PgShareStore
from .state.postgres.subscriptions import PgSubscriptionStore
from .state.quota import QuotaCounters, SQLiteQuota
from .state.scoreboard import Scoreboard
from .state.secrets import FileSecrets, Secrets
from .state.shares import TO_GROUP, TO_USER, Share, Shares, ShareStore, SQLiteShareStore
from .state.subscriptions import SQLiteSubscriptionStore, SubscriptionStore
from .state.uploads import UploadStore

log = logging.getLogger("davserver")

# Windows' WebClient probes OPTIONS on the host root before mapping any sub-path.
ROOT_OPTIONS = {"DAV": "1, 2", "MS-Author-Via": "DAV", "Allow": "OPTIONS, PROPFIND"}
LOCKS_FILE = "locks.sqlite3"
CHANGES_FILE = "changes.sqlite3"
SUBSCRIPTIONS_FILE = "push.sqlite3"
CHECKSUMS_FILE = "checksums.sqlite3"
QUOTA_FILE = "quota.sqlite3"
GENERATIONS_FILE = "generations"
SHARED_PATH_LOCKS = ".davtmp-locks"
"""The lock file of a folder that several hosts share (hidden and refused like every
``.davtmp-`` name; it is no temporary file: it stays)."""
STATUS_DIR = "status"
METRICS_DIR = "metrics"
SHARES_FILE = "shares.sqlite3"
PUSH_DIR = "push"
"""Of the state folder: the WebDAV-Push keys and the lock files of the polling."""
WELL_KNOWN = "/.well-known/"
_NO_GROUPS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PushState:
    """What the push features of a server share: the subscriptions, the change log
    (whose numbers are the sync tokens of plain collections), where the keys are kept,
    who polls for outside changes, and the logins (who may still have subscriptions)."""

    store: SubscriptionStore
    changelog: ChangeLog
    settings: PushSettings
    kept: Secrets
    leaders: Leaders
    logins: Logins | None

    async def close(self) -> None:
        """Close the stores (after the push features closed)."""
        await self.store.close()
        await self.kept.close()
        await self.leaders.close()


def push_entitled(rules: AccessConfig, logins: Logins | None) -> Entitled:
    """Whether a user may still subscribe on a tree with these (resolved) rules: may
    still log in, and still has write access (what registering takes)."""

    async def entitled(owner: str) -> bool | None:
        if not owner:
            return access.allows(rules.anonymous, "POST")
        if logins is None:
            return False  # no accounts any more: nobody logs in as ``owner``
        try:
            if not await logins.known(owner):
                return False
            groups = await logins.groups.of(owner)
        except DirectoryUnavailable as exc:
            log.warning("push: whether %r may keep its subscriptions is unknown: %s",
                        owner, exc)  # fmt: skip
            return None
        return access.allows(rules.level(owner, groups), "POST")

    return entitled


def push_settings(push: PushConfig) -> PushSettings:
    """The ``[push]`` table as the push feature takes it."""
    return PushSettings(
        push.allow_hosts, push.contact, push.max_expiry, push.ttl,
        push.merge_window, push.poll_interval, push.max_subscriptions, push.timeout,
    )  # fmt: skip


class SharedState:
    """What the processes serving the same stores share, built from the configuration:
    SQLite files in ``state_dir`` (the processes of one host), or the PostgreSQL database
    of ``[state] url`` (several hosts). The locks, the change sequences and their event
    bus, the calendar indexes, the named locks of calendar writes, how processes tell
    each other of changes (``generations``), the checksums of files and the bytes of
    quota'd trees, the WebDAV-Push subscriptions, its keys (``secrets``) and which process
    polls (``leaders``), the scheduling records, the shares, where resumable uploads
    wait, and where writes to one path of a folder are serialized."""

    def __init__(self, config: Config) -> None:
        self.state_dir = config.server.state_dir
        self.indexes: dict[str, ItemIndex] = {}
        """The calendar index of each CalDAV mount made so far, by prefix (the metrics)."""
        url = config.state.url
        self.db = PgDatabase(url, config.state.pool_size) if url is not None else None
        self.generations: Generations
        self.checksums: ChecksumStore
        self.quotas: QuotaCounters
        lockstore: LockStore
        changelog: ChangeLog
        if self.db is not None:
            self.generations = PgGenerations(self.db)
            lockstore = PgLockStore(self.db)
            changelog = PgChangeLog(self.db)
            self.checksums = PgChecksums(self.db)
            self.quotas = PgQuota(self.db)
        else:
            self.generations = FileGenerations(self.state_dir / GENERATIONS_FILE)
            lockstore = SQLiteLockStore(self.state_dir / LOCKS_FILE)
            changelog = SQLiteChangeLog(self.state_dir / CHANGES_FILE)
            self.checksums = SQLiteChecksums(self.state_dir / CHECKSUMS_FILE)
            self.quotas = SQLiteQuota(self.state_dir / QUOTA_FILE)
        self.changelog = changelog
        self.uploads = UploadStore(config.state.uploads_dir or self.state_dir / "uploads")
        self.locks = LockManager(lockstore, self.generations)
        self.bus = LocalBus(changelog, self.generations)

    async def catch_up(self) -> None:
        """Hear what other processes said so far, and drop what they changed from the
        caches (run once a named lock is held, before the holder checks anything)."""
        await self.bus.catch_up(settle=True)

    def index(self, m: MountConfig) -> ItemIndex:
        """The calendar index of a CalDAV mount."""
        index: ItemIndex
        if self.db is not None:
            index = PgCalendarIndex(self.db, m.prefix)
        else:
            index = CalendarIndex(self.state_dir / f"caldav{m.prefix.replace('/', '_')}.sqlite3")
        self.indexes[m.prefix or "/"] = index
        return index

    def mutexes(self, m: MountConfig, kind: str = "caldav") -> Mutexes:
        """The named locks of a CalDAV mount's writes (``kind``: whose; scheduling's
        updates of meeting copies have their own)."""
        if self.db is not None:
            space = m.prefix if kind == "caldav" else f"{kind}\0{m.prefix}"
            return PgMutexes(self.db, space, self.catch_up)
        path = self.state_dir / f"{kind}{m.prefix.replace('/', '_')}.locks"
        return FileMutexes(path, self.catch_up)

    def subscriptions(self) -> SubscriptionStore:
        """A store of the WebDAV-Push subscriptions (its user closes it)."""
        if self.db is not None:
            return PgSubscriptionStore(self.db)
        return SQLiteSubscriptionStore(self.state_dir / SUBSCRIPTIONS_FILE)

    def secrets(self) -> Secrets:
        """Where the secrets made once are kept, the WebDAV-Push keys (its user closes
        it): files of ``state_dir/push``, or rows of the database."""
        if self.db is not None:
            return PgSecrets(self.db)
        return FileSecrets(self.state_dir / PUSH_DIR)

    def leaders(self) -> Leaders:
        """Who does the jobs only one process may do (its user closes it): lock files
        of ``state_dir/push`` (the processes of the host), or advisory locks of the
        database (every host's)."""
        if self.db is not None:
            return PgLeaders(self.db)
        return FileLeaders(self.state_dir / PUSH_DIR)

    def share_store(self) -> ShareStore:
        """A store of the shares made through the protocol (its user closes it)."""
        if self.db is not None:
            return PgShareStore(self.db)
        return SQLiteShareStore(self.state_dir / SHARES_FILE)

    def records(self, m: MountConfig) -> Records:
        """What implicit scheduling remembers of the meetings of a CalDAV mount (its user
        closes it)."""
        if self.db is not None:
            return PgRecords(self.db, m.prefix)
        return SQLiteRecords(self.state_dir / f"scheduling{m.prefix.replace('/', '_')}.sqlite3")

    def path_lock_file(self, root: Path) -> str:
        """Where the processes serving the folder ``root`` serialize their writes to one
        path (backends/pathlocks.py): the state folder for the processes of one host; in
        the folder itself, hidden, where hosts share it."""
        if self.db is not None:
            return str(root / SHARED_PATH_LOCKS)
        name = hashlib.sha256(os.fsencode(root)).hexdigest()[:24]
        return str(self.state_dir / "pathlocks" / f"{name}.lock")

    async def open(self) -> None:
        """Connect (the database: migrated, or refused when newer), listen, load."""
        if self.db is not None:
            await self.db.attach().open()
        await self.generations.open()
        await self.bus.open()
        await self.locks.open()

    async def close(self) -> None:
        """Close everything :meth:`open` opened (after the mounts closed)."""
        await self.locks.close()
        await self.changelog.close()
        await self.checksums.close()
        await self.quotas.close()
        await self.generations.close()
        if self.db is not None:
            await self.db.close()


def build_mount(
    m: MountConfig,
    config: Config,
    state: SharedState,
    accounts: Callable[[], list[str]] = list,
    push: PushState | None = None,
    shares: Shares | None = None,
) -> Mount:
    """The mount that a ``[[mounts]]`` table describes; ``accounts`` names the users; with
    ``push``, its collections offer WebDAV-Push; ``shares``: the collections users share."""
    if m.type not in ("webdav", "caldav"):
        return build_site_mount(m, config)
    server = config.server
    rules = m.access.resolved(m.type, config.auth.accounts)
    settings = DavSettings(
        depth_infinity=m.depth_infinity,
        max_xml_size=server.max_xml_size,
        lock_timeout=server.lock_timeout,
        lock_timeout_max=server.lock_timeout_max,
        owner_only=bool(rules.owner_only),
        anonymous=rules.anonymous,
        authenticated=rules.authenticated,
        max_props=server.max_propfind_props,
        default_charset=server.default_charset,
    )
    features: list[Feature] = [WebDav(), Locking()]
    locks, bus = state.locks, state.bus
    if m.type == "caldav":
        users = lambda: [*accounts(), m.default_user]  # noqa: E731
        homes: Homes = {CALENDARS: default_calendars()}
        if m.contacts:
            homes = {**homes, ADDRESSBOOKS: default_addressbooks()}
        fixed = {CALENDARS: BOXES} if m.scheduling else None
        storage = build_storage(m, config, state)
        # Sharing and delegation are offered where trees have owners (elsewhere everyone
        # reaches all): the store lays out the group principals then.
        shared = shares if rules.owner_only else None
        groups = shared.group_exists if shared is not None else None
        store = CalendarStore(
            storage, state.index(m), homes, users, state.mutexes(m), fixed, groups
        )
        auth = config.auth
        directory = Directory(m.prefix, auth.addresses, auth.domain, users)
        calendar_settings = CalDavSettings(
            m.default_user,
            m.max_resource_size,
            addresses=directory.mail,
            principal_search=m.principal_search,
        )
        caldav = CalDav(m.prefix, store, calendar_settings, shared)
        features.append(caldav)
        if m.contacts:
            contacts = CardDavSettings(m.default_user, m.max_resource_size)
            features.append(CardDav(m.prefix, store, contacts))
        if m.scheduling:
            records = state.records(m)
            mailer = Mailer(smtp_settings(config.smtp))
            copies = state.mutexes(m, "scheduling")
            features.append(Scheduling(m.prefix, store, directory, records, mailer, copies))
        if push is not None:
            target = CalendarTarget(store)
            entitled = push_entitled(rules, push.logins)
            features.append(
                Push(m.prefix, target, push.store, push.settings, push.kept, push.leaders,
                     entitled)
            )  # fmt: skip
        return DavMount(m.prefix, store, settings, locks, features, bus, caldav.layout)
    storage = build_storage(m, config, state)
    features.append(PartialUpdate())
    features.append(FileManager(state.uploads))
    features.append(Checksums(m.prefix, state.checksums))
    limits = quota_limits(m)
    if limits.any:
        features.append(Quota(m.prefix, storage, state.quotas, limits))
    if push is not None:
        publish = functools.partial(bus.publish, m.prefix)
        folders = FolderTarget(storage, push.changelog, publish, settings.owner_only)
        entitled = push_entitled(rules, push.logins)
        features.append(
            Push(m.prefix, folders, push.store, push.settings, push.kept, push.leaders, entitled)
        )
    return DavMount(m.prefix, storage, settings, locks, features, bus)


def quota_limits(m: MountConfig) -> QuotaLimits:
    """The quotas a WebDAV mount's table sets."""
    return QuotaLimits(
        mount=parse_size(m.quota) if m.quota else None,
        user=parse_size(m.user_quota) if m.user_quota else None,
        users={name: parse_size(size) for name, size in m.user_quotas.items()},
        rescan=m.quota_rescan,
    )


def smtp_settings(smtp: SmtpConfig) -> SmtpSettings:
    """How the scheduling mailer reaches the ``[smtp]`` server."""
    return SmtpSettings(
        smtp.host, smtp.port, smtp.tls, smtp.username, smtp.password_file, smtp.sender,
        smtp.timeout,
    )  # fmt: skip


def build_storage(m: MountConfig, config: Config, state: SharedState) -> Storage:
    """The storage backend of a WebDAV mount."""
    if m.backend == "git":
        assert m.repo is not None
        return GitStorage(
            m.repo,
            codec=PROPS_CODEC,
            branch=m.branch,
            identity=m.author,
            state_dir=config.server.state_dir,
            stale_lock_age=m.stale_lock_age,
            gc_interval=m.gc_interval,
            gc_loose_objects=m.gc_loose_objects,
            gc_pack_limit=m.gc_pack_limit,
        )
    assert m.root is not None
    return FilesystemStorage(
        m.root, PROPS_CODEC, state.path_lock_file(m.root), read_cache=m.read_cache
    )


def build_site_mount(m: MountConfig, config: Config) -> Mount:
    """A static, CGI, WSGI, FastCGI, ASGI, status or metrics mount."""
    state_dir = config.server.state_dir
    if m.type == "status":
        return StatusMount(m.prefix, state_dir / STATUS_DIR, m.health_only)
    if m.type == "metrics":
        return MetricsMount(m.prefix, state_dir / METRICS_DIR)
    if m.type == "fastcgi":
        return FastCgiMount(
            m.prefix,
            FastCgiSettings(
                m.socket, m.root, m.index_names, m.timeout, m.pool_size, m.x_sendfile, m.env,
                m.command, m.processes,
            ),
        )  # fmt: skip
    if m.type == "asgi":
        return AsgiMount(m.prefix, AsgiSettings(m.app, m.pythonpath, m.x_sendfile))
    if m.type == "wsgi":
        settings = WsgiSettings(m.app, m.pythonpath, m.threads, m.x_sendfile)
        return WsgiMount(m.prefix, settings)
    assert m.root is not None
    if m.type == "cgi":
        return CgiMount(m.prefix, CgiSettings(m.root, m.timeout, m.x_sendfile, m.env))
    return StaticMount(
        m.prefix,
        StaticSettings(
            m.root, m.index_names, m.listing, m.mime_types, m.cache_control,
            m.precompressed, m.gzip, m.gzip_min_size, m.gzip_types, m.cache_ttl,
            config.server.default_charset,
        ),
    )  # fmt: skip


def fixed_shares(config: Config) -> list[Share]:
    """The shares the ``[[shares]]`` tables make, one per sharee."""
    return [
        Share(s.mount.rstrip("/"), s.path, kind, name, s.access)
        for s in config.shares
        for kind, names in ((TO_USER, s.users), (TO_GROUP, s.groups))
        for name in names
    ]


class Router:
    """Finds the mount for a request, longest prefix first, and lets it in or not."""

    def __init__(
        self,
        mounts: list[Mount],
        error_pages: dict[str, ErrorPages],
        access_rules: dict[str, AccessConfig],
        logins: Logins | None = None,
        max_xml: int = 1 << 20,
        max_props: int = 1000,
        shares: Shares | None = None,
    ) -> None:
        self.logins = logins
        self.shares = shares
        # For a PROPFIND of the root that no mount holds:
        self.max_xml = max_xml
        self.max_props = max_props
        self.access = access_rules  # by mount prefix
        # What read-only allows, by mount prefix: every DAV method that changes nothing,
        # only GET and HEAD where a script or an application answers.
        self.reads = {
            m.prefix: access.READ_METHODS if isinstance(m, DavMount) else access.SITE_READ_METHODS
            for m in mounts
        }
        self.mounts = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)
        self.error_pages = error_pages  # by mount prefix
        self.well_known: dict[str, str] = {}
        self.discovery: list[Discovery] = []
        trees = [m for m in mounts if isinstance(m, DavMount)]
        for tree in trees:
            for name, target in tree.features.well_known().items():
                self.well_known.setdefault(name, tree.prefix + "/" + target)
            self.discovery.extend(tree.features.own_discovery())
        for tree in trees:
            own = tree.features.own_discovery()
            tree.features.discovery = [d for d in self.discovery if d not in own]
        self.scoreboard: Scoreboard | None = None
        """Where the requests under way are shown (status and metrics mounts read it)."""
        at_root = self.find("/")
        self.root_reports: DavMount | None = None
        """Where a REPORT of ``/`` goes when the tree there answers none (a WebDAV tree, or
        no mount): the root of the first tree that answers reports. Clients search for
        principals at the server's address (the caldav library does)."""
        if not (isinstance(at_root, DavMount) and at_root.features.report_handlers):
            self.root_reports = next((t for t in trees if t.features.report_handlers), None)
        self.in_flight = 0
        self.closing = False
        """Set when the server stops: every answer from then on closes its connection."""
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is being handled."""
        await self._idle.wait()

    def find(self, raw_path: str) -> Mount | None:
        """The mount whose prefix holds ``raw_path``."""
        path = raw_path.partition("?")[0]
        for mount in self.mounts:
            p = mount.prefix
            if not p or (path.startswith(p) and (len(path) == len(p) or path[len(p)] == "/")):
                return mount
        return None

    async def _admit(self, request: web.Request, mount: Mount | None) -> web.Response | None:
        """Check the credentials a request carries and the mount's access rules; None lets
        the request in, anything else is the answer (401 or 403). Every method of every
        mount passes here before any code of the mount runs."""
        logins = self.logins
        user = None
        try:
            login = await logins.login(request) if logins is not None else None
            if login is not None:
                user = request[USER] = login.user
                request[AUTH_SOURCE] = login.source
            if mount is None:
                return challenge() if logins is not None and user is None else None
            rules = self.access[mount.prefix]
            groups = _NO_GROUPS
            if rules.groups and user is not None and logins is not None:
                groups = await logins.groups.of(user)
            refusal = access.admit(
                request, rules, user, logins is not None, self.reads[mount.prefix], groups
            )
            if refusal is None and user is not None and rules.owner_only:
                await self._grant(request, mount.prefix, user, groups if rules.groups else None)
            return refusal
        except LoginFailed:
            return challenge()
        except DirectoryUnavailable as exc:
            log.warning("%s %s: 503, the directory cannot be asked: %s",
                        request.method, request.raw_path, exc)  # fmt: skip
            return web.Response(
                status=503, text="503 Service Unavailable\n", headers={"Retry-After": "10"}
            )
        except sqlite3.Error as exc:
            log.warning("%s %s: 503, the shares cannot be read: %s",
                        request.method, request.raw_path, exc)  # fmt: skip
            return web.Response(status=503, text="503 Service Unavailable: state unavailable\n")

    async def _grant(
        self, request: web.Request, prefix: str, user: str, groups: frozenset[str] | None
    ) -> None:
        """Put what ``user`` may reach of other users' trees (the shares) in the request:
        the owner-only rule of the mount (``Context.check_owner``) asks it of every path."""
        if self.shares is None:
            return
        logins = self.logins

        async def groups_of() -> frozenset[str]:
            if groups is not None:
                return groups
            return await logins.groups.of(user) if logins is not None else frozenset()

        grants = await self.shares.grants(prefix, user, groups_of)
        if grants.roots:
            request[GRANTS] = grants

    def _well_known(self, request: web.Request) -> web.Response | None:
        """RFC 6764's redirect (a 301: TbSync had trouble with 302, Radicale found)."""
        raw = request.raw_path
        if not raw.startswith(WELL_KNOWN) and "%" not in raw:
            return None  # (cheaply) no encoding of the well-known prefix either
        path = request.path
        if not path.startswith(WELL_KNOWN):
            return None
        target = self.well_known.get(path[len(WELL_KNOWN) :].rstrip("/"))
        if target is None:
            return None
        raise web.HTTPMovedPermanently(target)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; a handler that raises is logged and answered 500."""
        requestid.current.set(requestid.new(request.headers.get(requestid.HEADER)))
        self._well_known(request)
        reports = self.root_reports
        if (
            reports is not None
            and request.method == "REPORT"
            and request.raw_path.partition("?")[0] == "/"
        ):
            routed = request.clone(rel_url=reports.prefix + "/")
            try:
                return await self._route(routed, reports)
            finally:
                # The access log and the metrics read the request aiohttp holds.
                for key in (MOUNT_PREFIX, USER, AUTH_SOURCE):
                    if key in routed:
                        request[key] = routed[key]
        return await self._route(request, self.find(request.raw_path))

    async def _route(self, request: web.Request, mount: Mount | None) -> web.StreamResponse:
        """Admit ``request`` and have ``mount`` (None: no mount holds it) answer it."""
        if mount is not None:
            request[MOUNT_PREFIX] = mount.prefix
        refusal = await self._admit(request, mount)
        if refusal is not None:
            if request.method == "OPTIONS":
                # Windows asks OPTIONS before it sends credentials: a DAV mount answers
                # it with a fixed answer that reaches no storage, script or app.
                if mount is None:
                    return web.Response(headers=ROOT_OPTIONS)
                if isinstance(mount, DavMount):
                    return mount.fixed_options()
            return refusal
        if mount is None:
            if request.method == "OPTIONS":
                return web.Response(headers=ROOT_OPTIONS)
            if request.method == "PROPFIND" and request.raw_path.partition("?")[0] == "/":
                prefixes = (m.prefix for m in self.mounts)
                return await serverroot.propfind(
                    request, prefixes, self.discovery, self.max_xml, self.max_props
                )
            return web.Response(status=404, text="404 Not Found\n")
        self.in_flight += 1
        self._idle.clear()
        board = self.scoreboard
        slot = -1
        if board is not None:
            client = request.remote or "-"
            slot = board.begin(request.method, request.raw_path, client, requestid.current.get())
        try:
            response = await mount.handle(request)
        except web.HTTPException:
            raise
        except ConnectionError as exc:
            log.info("%s %s: client went away: %s", request.method, request.raw_path, exc)
            return web.Response(status=400, text="connection lost\n")
        except Exception:
            log.exception("%s %s failed", request.method, request.raw_path)
            response = web.Response(status=500, text="500 Internal Server Error\n")
        finally:
            if board is not None:
                board.end(slot)
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
        if not response.prepared and request.writer.output_size:
            # A streamed answer (a 207) had begun when the handler failed: a second answer
            # cannot follow it, and only a closed connection tells the client it is cut short.
            raise ConnectionError("the answer was cut short by an error")
        pages = self.error_pages.get(mount.prefix)
        if pages is not None:
            response = pages.apply(response)
        if self.closing:
            response.force_close()
        return response


ROUTER_KEY = web.AppKey("davserver.router", Router)
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
DIRECT_KEY: web.AppKey[Handler] = web.AppKey("davserver.direct")
"""What the server hands every request to: :func:`direct_handler`."""


def direct_handler(
    app: web.Application,
    route: web.AbstractRoute,
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Handler:
    """``handle`` as aiohttp's ``Application._handle`` would reach it through ``route``,
    the app's one route (every method, every path), without finding it again for each
    request: no URL matching, no event loop lookup (a ``getpid`` system call on Python
    3.11). What the handler and aiohttp see of the match (``request.app``, the response
    signals) is the same, and an ``Expect`` header is answered first as aiohttp does."""
    info = UrlMappingMatchInfo({"tail": ""}, route)
    info.add_app(app)
    info.freeze()
    expect = info.expect_handler

    async def direct(request: web.BaseRequest) -> web.StreamResponse:
        assert isinstance(request, web.Request)
        request._match_info = info
        if request.headers.get("Expect"):
            answer = await expect(request)
            await request.writer.drain()
            if answer is not None:
                return answer
        return await handle(request)

    return direct


def create_app(config: Config) -> web.Application:
    """The application serving every mount of ``config``."""
    app = web.Application(client_max_size=1 << 20)
    state = SharedState(config)
    logins = Logins(config) if config.auth.accounts else None
    accounts = logins.names if logins is not None else list
    push = None
    if config.push.enabled:
        settings = push_settings(config.push)
        push = PushState(
            state.subscriptions(), state.changelog, settings, state.secrets(), state.leaders(),
            logins,
        )  # fmt: skip
    groups = logins.groups if logins is not None else None
    shares = Shares(fixed_shares(config), state.share_store(), state.generations, groups)
    mounts = [build_mount(m, config, state, accounts, push, shares) for m in config.mounts]
    pages = {m.prefix: ErrorPages(m.error_pages) for m in config.mounts if m.error_pages}
    rules = {m.prefix: m.access.resolved(m.type, logins is not None) for m in config.mounts}
    server = config.server
    router = Router(
        mounts, pages, rules, logins, server.max_xml_size, server.max_propfind_props, shares
    )
    app[ROUTER_KEY] = router
    # Under load, a write's change-log commit waits a moment for others to go with it.
    state.changelog.wait_for_company(lambda: router.in_flight > 1)
    board = observe(mounts, router, state, server.max_connections)
    app[DISPATCH] = router.handle
    # Every path, line breaks included ("." would not match a decoded %0A, and aiohttp
    # would answer 404 itself, without a log line, where the mount refuses the name).
    route = app.router.add_route("*", "/{tail:[\\s\\S]*}", router.handle)
    app[DIRECT_KEY] = direct_handler(app, route, router.handle)

    async def open_mounts(_app: web.Application) -> None:
        await state.open()
        if logins is not None:
            await logins.open()
        if board is not None:
            await offload(board.open)
        for mount in mounts:
            await mount.open()
        for page_set in pages.values():
            await page_set.load()

    async def close_mounts(_app: web.Application) -> None:
        for mount in mounts:
            await mount.close()
        if push is not None:
            await push.close()
        await shares.close()
        await state.close()
        if board is not None:
            board.close()
        if logins is not None:
            await offload(logins.close)

    app.on_startup.append(open_mounts)
    app.on_cleanup.append(close_mounts)
    return app


def prepare_shared(config: Config) -> None:
    """Before the workers start (or the one process serves): empty the scoreboard and the
    metric files of the last run, when a status or metrics mount shows them."""
    types = {m.type for m in config.mounts}
    state_dir = config.server.state_dir
    if types & {"status", "metrics"}:
        scoreboard.prepare(state_dir / STATUS_DIR)
    if "metrics" in types:
        metrics.prepare(state_dir / METRICS_DIR)


def observe(
    mounts: list[Mount],
    router: Router,
    state: SharedState,
    slots: int,
) -> Scoreboard | None:
    """Connect the status and metrics mounts to what they show: the router's scoreboard
    (made only when one of them is there: it costs every request a little) and the
    gauges read at a scrape."""
    shown = [m for m in mounts if isinstance(m, StatusMount | MetricsMount)]
    if not shown:
        return None
    board = Scoreboard(state.state_dir / STATUS_DIR, slots)
    router.scoreboard = board
    for mount in shown:
        if isinstance(mount, StatusMount):
            mount.stopping = lambda: router.closing
        else:
            mount.probes = probes(state.locks, state.indexes, board.folder)
    return board


def probes(locks: LockManager, indexes: dict[str, ItemIndex], status: Path) -> list[metrics.Probe]:
    """The gauges a scrape reads: state the workers share, and the scoreboard."""

    async def locks_held() -> metrics.Rows:
        await locks.sync()
        return [((), float(locks.held()))]

    async def index_items() -> metrics.Rows:
        return [((prefix,), float(await index.size())) for prefix, index in indexes.items()]

    async def workers() -> metrics.Rows:
        _, seen = await offload(scoreboard.read, status)
        return [((), float(len(seen)))]

    async def in_flight() -> metrics.Rows:
        _, seen = await offload(scoreboard.read, status)
        return [((), float(sum(len(w.busy) for w in seen)))]

    return [
        metrics.Probe("davserver_locks_held", "WebDAV locks held", (), locks_held),
        metrics.Probe(
            "davserver_calendar_index_items",
            "Items in the calendar index, by mount",
            ("mount",),
            index_items,
        ),
        metrics.Probe("davserver_workers", "Worker processes serving", (), workers),
        metrics.Probe(
            "davserver_requests_in_flight", "Requests under way, in every worker", (), in_flight
        ),
    ]
