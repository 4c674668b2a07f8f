"""The aiohttp application: mounts routed by longest prefix, one error net for all."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from davserver.backends.filesystem import FilesystemStorage

from .config import Config, MountConfig
from .locks.manager import LockManager
from .locks.sqlite_store import SQLiteLockStore
from .mounts import Mount
from .mounts.dav import DavMount, DavSettings

log = logging.getLogger("davserver")

# Windows' WebClient probes OPTIONS on the host root before mapping any sub-path.
ROOT_OPTIONS = {"DAV": "1, 2", "MS-Author-Via": "DAV", "Allow": "OPTIONS"}
LOCKS_FILE = "locks.sqlite3"


def build_mount(m: MountConfig, config: Config, locks: LockManager) -> Mount:
    """The mount that a ``[[mounts]]`` table describes."""
    assert m.root is not None
    server = config.server
    settings = DavSettings(
        depth_infinity=m.depth_infinity,
        max_xml_size=server.max_xml_size,
        lock_timeout=server.lock_timeout,
        lock_timeout_max=server.lock_timeout_max,
    )
    return DavMount(m.prefix, FilesystemStorage(m.root), settings, locks)


class Router:
    """Finds the mount for a request, longest prefix first."""

    def __init__(self, mounts: list[Mount]) -> None:
        self.mounts = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)
        self.in_flight = 0
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

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; a handler that raises is logged and answered 500."""
        mount = self.find(request.raw_path)
        if mount is None:
            if request.method == "OPTIONS":
                return web.Response(headers=ROOT_OPTIONS)
            return web.Response(status=404, text="404 Not Found\n")
        self.in_flight += 1
        self._idle.clear()
        try:
            return await mount.handle(request)
        except web.HTTPException:
            raise
        except ConnectionError as exc:
            log.info("%s %s: client went away: %s", request.method, request.raw_path, exc)
            return web.Response(status=400, text="connection lost\n")
        except Exception:
            log.exception("%s %s failed", request.method, request.raw_path)
            return web.Response(status=500, text="500 Internal Server Error\n")
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()


ROUTER_KEY = web.AppKey("davserver.router", Router)


def create_app(config: Config) -> web.Application:
    """The application serving every mount of ``config``."""
    app = web.Application(client_max_size=1 << 20)
    locks = LockManager(SQLiteLockStore(config.server.state_dir / LOCKS_FILE))
    mounts = [build_mount(m, config, locks) for m in config.mounts]
    router = Router(mounts)
    app[ROUTER_KEY] = router
    app.router.add_route("*", "/{tail:.*}", router.handle)

    async def open_mounts(_app: web.Application) -> None:
        await locks.open()
        for mount in mounts:
            await mount.open()

    async def close_mounts(_app: web.Application) -> None:
        for mount in mounts:
            await mount.close()
        await locks.close()

    app.on_startup.append(open_mounts)
    app.on_cleanup.append(close_mounts)
    return app
