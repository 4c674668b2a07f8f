"""The aiohttp application: mounts routed by longest prefix, one error net for all."""

from __future__ import annotations

import logging
import mimetypes

from aiohttp import web

from davserver.backends.filesystem import FilesystemStorage

from .config import Config, MountConfig
from .mounts import Mount
from .mounts.dav import DavMount, DavSettings

log = logging.getLogger("davserver")

MOUNTS_KEY = web.AppKey("davserver.mounts", list)
# Windows' WebClient probes OPTIONS on the host root before mapping any sub-path.
ROOT_OPTIONS = {"DAV": "1", "MS-Author-Via": "DAV", "Allow": "OPTIONS"}


def build_mount(m: MountConfig, config: Config) -> Mount:
    """The mount that a ``[[mounts]]`` table describes."""
    assert m.root is not None
    settings = DavSettings(depth_infinity=m.depth_infinity, max_xml_size=config.server.max_xml_size)
    return DavMount(m.prefix, FilesystemStorage(m.root), settings)


class Router:
    """Finds the mount for a request, longest prefix first."""

    def __init__(self, mounts: list[Mount]) -> None:
        self.mounts = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)

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
        try:
            return await mount.handle(request)
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.raw_path)
            return web.Response(status=500, text="500 Internal Server Error\n")


def create_app(config: Config) -> web.Application:
    """The application serving every mount of ``config``."""
    mimetypes.init()
    app = web.Application(client_max_size=1 << 20)
    mounts = [build_mount(m, config) for m in config.mounts]
    app[MOUNTS_KEY] = mounts
    router = Router(mounts)
    app.router.add_route("*", "/{tail:.*}", router.handle)

    async def close_mounts(_app: web.Application) -> None:
        for mount in mounts:
            await mount.close()

    app.on_cleanup.append(close_mounts)
    return app
