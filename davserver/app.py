"""The aiohttp application: mounts routed by longest prefix, access decided before any
mount code runs, one error net for all."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from davserver.backends.base import Storage
from davserver.backends.filesystem import FilesystemStorage
from davserver.backends.git import GitStorage

from . import access, serverroot
from .auth.basic import challenge
from .auth.ldap import DirectoryUnavailable
from .auth.logins import LoginFailed, Logins
from .caldav.feature import CalDav, default_calendars
from .caldav.services import CalDavSettings
from .caldav.store.index import CalendarIndex
from .caldav.store.layout import ADDRESSBOOKS, CALENDARS, CalendarStore, Homes
from .carddav.feature import CardDav, default_addressbooks
from .carddav.services import CardDavSettings
from .config import AccessConfig, Config, MountConfig, parse_size
from .dav.context import DavSettings
from .dav.core import Checksums, FileManager, Locking, PartialUpdate, Quota, WebDav
from .dav.deadprops import PROPS_CODEC
from .dav.features import Discovery, Feature
from .dav.identity import AUTH_SOURCE, GRANTS, USER
from .dav.quota import QuotaLimits
from .events import EventBus, LocalBus
from .locks.manager import LockManager
from .locks.sqlite_store import SQLiteLockStore
from .mounts import DISPATCH, MOUNT_PREFIX, Mount
from .mounts.cgi import CgiMount, CgiSettings
from .mounts.dav import DavMount
from .mounts.errorpages import ErrorPages
from .mounts.static import StaticMount, StaticSettings
from .mounts.wsgi import WsgiMount, WsgiSettings
from .runtime.threads import offload
from .state.changelog import SQLiteChangeLog
from .state.checksums import ChecksumStore, SQLiteChecksums
from .state.generations import Generations
from .state.mutex import Mutexes
from .state.quota import QuotaCounters, SQLiteQuota
from .state.shares import TO_GROUP, TO_USER, Share, Shares, ShareStore
from .state.uploads import UploadStore

log = logging.getLogger("davserver")

# Windows' WebClient probes OPTIONS on the host root before mapping any sub-path.
ROOT_OPTIONS = {"DAV": "1, 2", "MS-Author-Via": "DAV", "Allow": "OPTIONS, PROPFIND"}
LOCKS_FILE = "locks.sqlite3"
CHANGES_FILE = "changes.sqlite3"
CHECKSUMS_FILE = "checksums.sqlite3"
QUOTA_FILE = "quota.sqlite3"
GENERATIONS_FILE = "generations"
SHARES_FILE = "shares.sqlite3"
WELL_KNOWN = "/.well-known/"


def build_mount(
    m: MountConfig,
    config: Config,
    locks: LockManager,
    bus: EventBus,
    accounts: Callable[[], list[str]] = list,
    checksums: ChecksumStore | None = None,
    quotas: QuotaCounters | None = None,
    shares: Shares | None = None,
) -> Mount:
    """The mount that a ``[[mounts]]`` table describes; ``accounts`` names the users;
    ``checksums`` keeps the checksums of WebDAV trees' files, ``quotas`` the bytes their
    quota'd trees use; ``shares`` the collections users share."""
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
    if m.type == "caldav":
        index = CalendarIndex(server.state_dir / f"caldav{m.prefix.replace('/', '_')}.sqlite3")
        users = lambda: [*accounts(), m.default_user]  # noqa: E731
        mutexes = Mutexes(server.state_dir / f"caldav{m.prefix.replace('/', '_')}.locks")
        homes: Homes = {CALENDARS: default_calendars()}
        if m.contacts:
            homes = {**homes, ADDRESSBOOKS: default_addressbooks()}
        store = CalendarStore(build_storage(m, config), index, homes, users, mutexes)
        # Sharing is offered where trees have owners (elsewhere everyone reaches all).
        caldav = CalDav(
            m.prefix,
            store,
            CalDavSettings(m.default_user, m.max_resource_size, m.principal_search),
            shares if rules.owner_only else None,
        )
        features.append(caldav)
        if m.contacts:
            contacts = CardDavSettings(m.default_user, m.max_resource_size)
            features.append(CardDav(m.prefix, store, contacts))
        return DavMount(m.prefix, store, settings, locks, features, bus, caldav.layout)
    storage = build_storage(m, config)
    features.append(PartialUpdate())
    features.append(FileManager(UploadStore(server.state_dir / "uploads")))
    if checksums is not None:
        features.append(Checksums(m.prefix, checksums))
    limits = quota_limits(m)
    if quotas is not None and limits.any:
        features.append(Quota(m.prefix, storage, quotas, limits))
    return DavMount(m.prefix, storage, settings, locks, features, bus)


def quota_limits(m: MountConfig) -> QuotaLimits:
    """The quotas a WebDAV mount's table sets."""
    return QuotaLimits(
        mount=parse_size(m.quota) if m.quota else None,
        user=parse_size(m.user_quota) if m.user_quota else None,
        users={name: parse_size(size) for name, size in m.user_quotas.items()},
        rescan=m.quota_rescan,
    )


def build_storage(m: MountConfig, config: Config) -> Storage:
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
        )
    assert m.root is not None
    return FilesystemStorage(m.root, PROPS_CODEC, path_lock_file(config.server.state_dir, m.root))


def build_site_mount(m: MountConfig, config: Config) -> Mount:
    """A static, CGI or WSGI mount."""
    if m.type == "wsgi":
        settings = WsgiSettings(m.app, m.pythonpath, m.threads, m.x_sendfile)
        return WsgiMount(m.prefix, settings)
    assert m.root is not None
    if m.type == "cgi":
        return CgiMount(m.prefix, CgiSettings(m.root, m.timeout, m.x_sendfile, m.env))
    return StaticMount(
        m.prefix,
        StaticSettings(
            m.root, m.index, m.listing, m.mime_types, m.cache_control,
            m.precompressed, m.gzip, m.gzip_min_size, m.gzip_types, m.cache_ttl,
            config.server.default_charset,
        ),
    )  # fmt: skip


def path_lock_file(state_dir: Path, root: Path) -> str:
    """Where the processes of this host that serve the folder ``root`` serialize their
    writes to one path (backends/pathlocks.py)."""
    name = hashlib.sha256(os.fsencode(root)).hexdigest()[:24]
    return str(state_dir / "pathlocks" / f"{name}.lock")


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
            groups = frozenset[str]()
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
        path = request.path
        if not path.startswith(WELL_KNOWN):
            return None
        target = self.well_known.get(path[len(WELL_KNOWN) :].rstrip("/"))
        if target is None:
            return None
        raise web.HTTPMovedPermanently(target)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; a handler that raises is logged and answered 500."""
        self._well_known(request)
        mount = self.find(request.raw_path)
        if (
            self.root_reports is not None
            and request.method == "REPORT"
            and request.raw_path.partition("?")[0] == "/"
        ):
            mount = self.root_reports
            request = request.clone(rel_url=mount.prefix + "/")
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


def create_app(config: Config) -> web.Application:
    """The application serving every mount of ``config``."""
    app = web.Application(client_max_size=1 << 20)
    state_dir = config.server.state_dir
    generations = Generations(state_dir / GENERATIONS_FILE)
    locks = LockManager(SQLiteLockStore(state_dir / LOCKS_FILE), generations)
    changelog = SQLiteChangeLog(state_dir / CHANGES_FILE)
    bus = LocalBus(changelog, generations)
    logins = Logins(config) if config.auth.accounts else None
    accounts = logins.names if logins is not None else list
    checksums = SQLiteChecksums(state_dir / CHECKSUMS_FILE)
    quotas = SQLiteQuota(state_dir / QUOTA_FILE)
    shares = Shares(fixed_shares(config), ShareStore(state_dir / SHARES_FILE), generations)
    mounts = [
        build_mount(m, config, locks, bus, accounts, checksums, quotas, shares)
        for m in config.mounts
    ]
    pages = {m.prefix: ErrorPages(m.error_pages) for m in config.mounts if m.error_pages}
    rules = {m.prefix: m.access.resolved(m.type, logins is not None) for m in config.mounts}
    server = config.server
    router = Router(
        mounts, pages, rules, logins, server.max_xml_size, server.max_propfind_props, shares
    )
    app[ROUTER_KEY] = router
    app[DISPATCH] = router.handle
    # Every path, line breaks included ("." would not match a decoded %0A, and aiohttp
    # would answer 404 itself, without a log line, where the mount refuses the name).
    app.router.add_route("*", "/{tail:[\\s\\S]*}", router.handle)

    async def open_mounts(_app: web.Application) -> None:
        await offload(generations.open)
        await bus.open()
        await locks.open()
        if logins is not None:
            await logins.open()
        for mount in mounts:
            await mount.open()
        for page_set in pages.values():
            await page_set.load()

    async def close_mounts(_app: web.Application) -> None:
        for mount in mounts:
            await mount.close()
        await locks.close()
        await changelog.close()
        await checksums.close()
        await quotas.close()
        await shares.close()
        generations.close()
        if logins is not None:
            await offload(logins.close)

    app.on_startup.append(open_mounts)
    app.on_cleanup.append(close_mounts)
    return app
