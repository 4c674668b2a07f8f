"""A read-only folder over HTTP: files, index files, listings, content encodings."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from aiohttp import web
from multidict import CIMultiDictProxy

from davserver.backends.base import Body
from davserver.dav import send
from davserver.dav.charset import with_charset
from davserver.dav.errors import DAVError
from davserver.dav.paths import strip_query
from davserver.dav.props import http_date
from davserver.runtime.threads import offload

from . import dirlist, encoding, files
from .filecache import TtlCache

log = logging.getLogger("davserver.static")

ALLOW = "GET, HEAD, OPTIONS"
# Disk errors that say something about the path asked for (any other one is a 500).
_ERRNO_STATUS = {
    errno.ENOENT: 404,
    errno.ENOTDIR: 404,
    errno.ELOOP: 404,
    errno.ENAMETOOLONG: 404,
    errno.EACCES: 403,
    errno.EPERM: 403,
}
_REASONS = {403: "Forbidden", 404: "Not Found"}
CACHE_BYTES = 32 << 20


def _plain(headers: CIMultiDictProxy[str]) -> bool:
    """Whether a request asks for no range and has no precondition."""
    return not (
        "Range" in headers
        or "If-None-Match" in headers
        or "If-Modified-Since" in headers
        or "If-Match" in headers
        or "If-Unmodified-Since" in headers
    )


@dataclass(frozen=True, slots=True)
class StaticSettings:
    """The options of a static mount (see docs/mounts.md)."""

    root: Path
    index: tuple[str, ...] = ("index.html",)
    listing: bool = False
    mime_types: Mapping[str, str] = field(default_factory=dict)
    cache_control: str = ""
    precompressed: bool = True
    gzip: bool = True
    gzip_min_size: int = 1024
    gzip_types: tuple[str, ...] = encoding.GZIP_TYPES
    cache_ttl: float = 1.0
    default_charset: str = "utf-8"


@dataclass(slots=True)
class _Found:
    """What a path leads to, as worked out in the thread pool."""

    body: Body | None = None
    coding: str | None = None  # Content-Encoding of body
    vary: bool = False  # another Accept-Encoding could get another answer
    gzip_stream: bool = False  # compress body.file while sending it
    redirect: bool = False  # a folder asked for without its trailing slash
    listing: list[dirlist.Entry] | None = None


class StaticMount:
    """Serves the files below ``settings.root`` read-only."""

    def __init__(self, prefix: str, settings: StaticSettings) -> None:
        self.prefix = prefix
        self.settings = settings
        self.root = ""
        self._mime = {ext.lower().lstrip("."): t for ext, t in settings.mime_types.items()}
        self._negotiates = settings.precompressed or settings.gzip
        self._siblings = settings.precompressed
        self._may_gzip = settings.gzip
        # Small files' bodies and headers by (raw path, Accept-Encoding); None when off.
        self._cache: TtlCache[tuple[Body, dict[str, str]]] | None = (
            TtlCache(settings.cache_ttl, CACHE_BYTES) if settings.cache_ttl > 0 else None
        )

    async def open(self) -> None:
        """Resolve the root (which must be a folder)."""

        def prepare() -> str:
            real = os.path.realpath(self.settings.root)
            if not os.path.isdir(real):
                raise NotADirectoryError(f"static root {self.settings.root} is not a folder")
            return real

        self.root = await offload(prepare)

    async def close(self) -> None:
        """Nothing to release."""

    def content_type(self, name: str) -> str:
        """The MIME type of a file name: the mount's map first, then the system's."""
        ext = files.extension(name)
        return self._mime.get(ext) or files.type_of_extension(ext)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer GET, HEAD and OPTIONS."""
        method = request.method
        if method not in ("GET", "HEAD"):
            if method == "OPTIONS":
                return web.Response(headers={"Allow": ALLOW})
            return web.Response(
                status=405, text="405 Method Not Allowed\n", headers={"Allow": ALLOW}
            )
        raw = strip_query(request.raw_path)[len(self.prefix) :]
        accept_encoding = request.headers.get("Accept-Encoding", "")
        key = (raw, accept_encoding)
        hit = self._cache.get(key) if self._cache is not None else None
        if hit is not None:
            body, headers = hit
            if _plain(request.headers):
                return web.Response(body=body.data, headers=headers)
            return await files.respond(request, body, dict(headers))
        try:
            parts = files.segments(raw)
            codings = encoding.accepted(accept_encoding)
            ranged = "Range" in request.headers
            found = await offload(self._lookup, parts, raw.endswith("/"), codings, ranged)
        except DAVError as exc:
            log.info("%s %s refused: %s %s", method, request.raw_path, exc.status, exc.reason)
            return exc.response()
        except OSError as exc:
            status = _ERRNO_STATUS.get(exc.errno or 0)
            if status is None:
                raise
            return web.Response(status=status, text=f"{status} {_REASONS[status]}\n")
        if found.redirect:
            location = request.raw_path.partition("?")
            target = location[0] + "/" + (location[1] + location[2])
            return web.Response(status=301, headers={"Location": target})
        if found.listing is not None:
            url_path = "/".join([self.prefix, *parts]) + "/"
            body = dirlist.page(url_path, found.listing, at_top=not parts)
            return web.Response(body=body, content_type="text/html", charset="utf-8")
        body = found.body
        assert body is not None
        headers = self._headers(found)
        if found.gzip_stream:
            return await self._send_gzip_stream(request, body, headers)
        if self._cache is not None and body.data is not None:
            self._cache.put(key, (body, headers), len(body.data))
        return await files.respond(request, body, dict(headers))

    def _headers(self, found: _Found) -> dict[str, str]:
        """The headers of a whole 200 answer with the file found."""
        assert found.body is not None
        res = found.body.resource
        headers = {
            "Content-Type": with_charset(
                res.content_type or "application/octet-stream", self.settings.default_charset
            ),
            "ETag": res.etag,
            "Last-Modified": http_date(res.mtime),
        }
        if not found.gzip_stream:
            headers["Accept-Ranges"] = "bytes"
        if found.vary:
            headers["Vary"] = "Accept-Encoding"
        if self.settings.cache_control:
            headers["Cache-Control"] = self.settings.cache_control
        if found.coding:
            headers["Content-Encoding"] = found.coding
        return headers

    async def _send_gzip_stream(
        self, request: web.Request, body: Body, headers: dict[str, str]
    ) -> web.StreamResponse:
        refused = files.refusal(request, body.resource, headers)
        if refused is not None:
            await send.close(body)
            return refused
        assert body.file is not None
        return await encoding.stream_gzip(request, body.file, headers)

    # -- in the thread pool ----------------------------------------------------------

    def _lookup(
        self, parts: list[str], as_folder: bool, codings: frozenset[str], ranged: bool
    ) -> _Found:
        full = files.resolve_sync(self.root, parts)
        fd, st = files.open_sync(full)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            return self._folder(parts, full, as_folder, codings, ranged)
        if not stat.S_ISREG(st.st_mode) or as_folder:
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, "not a regular file", full)
        return self._file(parts, full, fd, st, codings, ranged)

    def _folder(
        self, parts: list[str], full: str, as_folder: bool, codings: frozenset[str], ranged: bool
    ) -> _Found:
        if not as_folder:
            return _Found(redirect=True)
        for name in self.settings.index:
            index = files.resolve_sync(self.root, [*parts, name])
            try:
                fd, st = files.open_sync(index)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                return self._file([*parts, name], index, fd, st, codings, ranged)
            os.close(fd)
        if self.settings.listing:
            return _Found(listing=dirlist.entries_sync(self.root, full))
        raise DAVError(403, "folder without an index file, and listings are off")

    def _file(
        self,
        parts: list[str],
        full: str,
        fd: int,
        st: os.stat_result,
        codings: frozenset[str],
        ranged: bool,
    ) -> _Found:
        path = "/".join(parts)
        ctype = self.content_type(parts[-1])
        if codings and self._siblings:
            for coding, suffix in encoding.SIBLINGS:
                if coding in codings:
                    found = self._sibling(parts, suffix, path, ctype)
                    if found is not None:
                        os.close(fd)
                        found.coding, found.vary = coding, True
                        return found
        res = files.resource(path, st, ctype)
        # Without Accept-Encoding, siblings are not looked for: a text type stands for
        # "may have encoded variants" (a cache keeping the plain answer for all is harmless).
        compressible = encoding.is_compressible(ctype, self.settings.gzip_types)
        vary = self._negotiates and compressible
        if (
            "gzip" in codings
            and self._may_gzip
            and compressible
            and st.st_size >= self.settings.gzip_min_size
        ):
            res.etag = res.etag[:-1] + '-gzip"'
            if st.st_size <= files.INLINE_LIMIT:
                data = files.read_all_sync(fd, st.st_size)
                os.close(fd)
                packed = encoding.gzip_bytes(data)
                res.size = len(packed)
                return _Found(body=Body(resource=res, data=packed), coding="gzip", vary=True)
            if not ranged:
                file: BinaryIO = os.fdopen(fd, "rb")
                return _Found(
                    body=Body(resource=res, file=file), coding="gzip", vary=True, gzip_stream=True
                )
            res.etag = files.etag(st)  # a range of a big file: send it as it is
        return _Found(body=files.body_sync(fd, res), vary=vary)

    def _sibling(self, parts: list[str], suffix: str, path: str, ctype: str) -> _Found | None:
        full = files.resolve_sync(self.root, [*parts[:-1], parts[-1] + suffix])
        try:
            fd, st = files.open_sync(full)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return _Found(body=files.body_sync(fd, files.resource(path, st, ctype)))
