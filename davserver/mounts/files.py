"""Files on disk for the static, CGI and WSGI mounts: safe paths, opening, sending.

The ``*_sync`` functions touch the disk and must run in the thread pool. Sending reuses the
WebDAV layer's conditional requests, byte ranges and sendfile (``davserver.dav``).
"""

from __future__ import annotations

import errno
import functools
import mimetypes
import os
import stat
from collections.abc import Sequence

from aiohttp import web

from davserver.backends.base import Body, Resource
from davserver.dav import conditions, send
from davserver.dav.errors import DAVError
from davserver.dav.paths import normalize
from davserver.dav.props import http_date

INLINE_LIMIT = 64 << 10  # files up to this size are read into memory, larger ones sendfile'd
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO never hangs us
mimetypes.init()  # reads the system's MIME tables now, not on the event loop later


def extension(name: str) -> str:
    """The lower-case extension of a file name, without its dot ("" when none)."""
    return name.rpartition(".")[2].lower() if "." in name else ""


@functools.lru_cache(maxsize=1024)
def type_of_extension(ext: str) -> str:
    """The system's MIME type for an extension (``application/octet-stream`` if unknown)."""
    return mimetypes.guess_type("x." + ext, strict=False)[0] or "application/octet-stream"


def guess_type(name: str) -> str:
    """The system's MIME type for a file name."""
    return type_of_extension(extension(name))


def segments(raw_rel: str) -> list[str]:
    """The decoded segments of a mount-relative raw path; refuses ``..``, NUL, ``%2F``."""
    path = normalize(raw_rel, frozenset(), ())
    return path.split("/") if path else []


def within(root: str, real: str) -> bool:
    """Whether the resolved path ``real`` is ``root`` or lies below it."""
    return real == root or real.startswith(root + os.sep)


def first_file(root: str, parts: Sequence[str], kind: str) -> tuple[int, str] | None:
    """Walk ``parts`` below ``root`` (a script mount's folder): the index and disk path of
    the first regular file (the parts after it are PATH_INFO), or None when every part is
    a folder; 404 for a missing part, 403 for a link out of the ``kind`` root or another
    kind of file. Blocking: call it off the event loop."""
    full = root
    for i, seg in enumerate(parts):
        full = full + os.sep + seg
        try:
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                if not within(root, os.path.realpath(full)):
                    raise DAVError(403, f"the path leads outside the {kind} root")
                st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise DAVError(404, "404 Not Found") from exc
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise DAVError(403, "not a regular file")
        return i, full
    return None


def resolve_sync(root: str, parts: Sequence[str]) -> str:
    """The disk path of ``parts`` below the resolved ``root``.

    Only a component that is a symlink gets resolved, and one leading out of the root is
    refused (403), so the common case costs one lstat per segment. A missing component
    ends the walk: opening the path will then fail.
    """
    full = root
    for seg in parts:
        full = full + os.sep + seg
        try:
            mode = os.lstat(full).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return os.path.join(root, *parts)
        if stat.S_ISLNK(mode) and not within(root, os.path.realpath(full)):
            raise DAVError(403, f"{'/'.join(parts)!r} leads outside the root")
    return full


def etag(st: os.stat_result) -> str:
    """The strong ETag of a file: inode, modification time and size, as WebDAV's."""
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def resource(path: str, st: os.stat_result, content_type: str) -> Resource:
    """The resource describing a regular file."""
    return Resource(
        path=path,
        is_collection=False,
        size=st.st_size,
        mtime=st.st_mtime,
        ctime=st.st_ctime,
        etag=etag(st),
        content_type=content_type,
    )


def open_sync(full: str) -> tuple[int, os.stat_result]:
    """Open ``full`` read-only; return the descriptor and its stat (file or folder)."""
    fd = os.open(full, _OPEN_FLAGS)
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        raise


def read_all_sync(fd: int, size: int) -> bytes:
    """``size`` bytes from the start of an open file (fewer if it shrank)."""
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def body_sync(fd: int, res: Resource, inline_limit: int = INLINE_LIMIT) -> Body:
    """A body for an open regular file: in memory when small (the file is closed), else
    the open file for sendfile (the body owns it)."""
    if res.size <= inline_limit:
        try:
            return Body(resource=res, data=read_all_sync(fd, res.size))
        finally:
            os.close(fd)
    return Body(resource=res, file=os.fdopen(fd, "rb"))


def open_file_sync(full: str, path: str, content_type: str) -> Body:
    """The body of the regular file ``full``; FileNotFoundError for anything else."""
    fd, st = open_sync(full)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", full)
    return body_sync(fd, resource(path, st, content_type))


def refusal(
    request: web.BaseRequest, res: Resource, headers: dict[str, str]
) -> web.Response | None:
    """Add ETag and Last-Modified to ``headers``; the 304 or 412 answer the conditional
    headers call for, or None to go on."""
    headers["ETag"] = res.etag
    headers["Last-Modified"] = http_date(res.mtime)
    status = conditions.evaluate(request.headers, res, safe_method=True)
    if status is None:
        return None
    return web.Response(status=status, headers=headers if status == 304 else None)


async def respond(
    request: web.BaseRequest, body: Body, headers: dict[str, str]
) -> web.StreamResponse:
    """Send ``body`` honouring the conditional headers, Range and If-Range."""
    res = body.resource
    refused = refusal(request, res, headers)
    if refused is not None:
        await send.close(body)
        return refused
    return await send.ranged(request, body, headers)
