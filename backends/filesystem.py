"""A folder on disk as a DAV store.

Every disk call runs on the storage's worker threads (see workers.py). Writes go to a
hidden temporary file in the target's folder and are renamed into place, so a reader or a
crash sees the old bytes or the new ones, never half of them; a collection copied is built
under a temporary name the same way. What a process killed during a long write leaves of
those is swept when the store opens next (see temps.py). Dead properties live in a hidden
``.davprops`` folder beside the resources they describe (``m.<name>`` for a member,
``self`` for the folder itself), so they move, copy and vanish with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import mimetypes
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree

from .base import (
    NAME_MAX,
    AlreadyExists,
    Body,
    Conflict,
    DeadProps,
    DeleteFailure,
    Forbidden,
    InsufficientStorage,
    NameTooLong,
    NotFound,
    Resource,
    StorageError,
)
from .temps import TEMP_PREFIX, Registry, temp_name
from .workers import WorkerPool, default_threads

PROPS_DIR = ".davprops"
SELF_PROPS = "self"
LISTING_BATCH = 512
WRITE_BUFFER = 1 << 20
_MAX_SIDE_NAME = 200
_SIDE_TAG = len("m.")

_T = TypeVar("_T")
_PROPS_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
mimetypes.init()  # reads the system's MIME tables now, not on the event loop later


_last_mtime_ns = 0
_mtime_lock = threading.Lock()


def _unique_mtime_ns() -> int:
    """Now, in nanoseconds, and never the same value twice in this process.

    Every write stamps its file with this, so the ETag (inode, mtime, size) changes on
    every write even when the filesystem's clock is coarse and inodes get reused.
    """
    global _last_mtime_ns
    with _mtime_lock:
        _last_mtime_ns = max(time.time_ns(), _last_mtime_ns + 1)
        return _last_mtime_ns


# What reading a path fails with when nothing is there, or can be (a name too long).
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})

_READ = os.O_RDONLY | os.O_CLOEXEC
_READ_NOFOLLOW = _READ | os.O_NOFOLLOW
_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_whole(fd: int, size: int) -> bytes:
    """The ``size`` bytes of a small file (fewer if it shrank meanwhile): one read()
    in the common case, without the buffered reader's extra fstat and EOF probe."""
    data = os.read(fd, size)
    while len(data) < size and (more := os.read(fd, size - len(data))):
        data += more
    return data


def _release(held: int | None) -> None:
    """Close the descriptor of a replaced file (see FilesystemChange._prepare_target)."""
    if held is not None:
        with contextlib.suppress(OSError):
            os.close(held)


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _content_type(name: str) -> str:
    return _type_of_extension(name.rpartition("/")[2].rpartition(".")[2])


@functools.lru_cache(maxsize=1024)
def _type_of_extension(ext: str) -> str:
    return mimetypes.guess_type("x." + ext, strict=False)[0] or "application/octet-stream"


def _member_props_name(name: str) -> str:
    """The name of a member's property file in its folder's ``.davprops``: ``m.<name>``,
    or a hash when that would be long (over 200 characters, or too long for the disk)."""
    if len(name) > _MAX_SIDE_NAME or len(os.fsencode(name)) > NAME_MAX - _SIDE_TAG:
        return "h." + hashlib.sha256(name.encode()).hexdigest()
    return "m." + name


def _encode_props(props: DeadProps) -> bytes:
    return b"<props>" + b"".join(props.values()) + b"</props>"


def _decode_props(data: bytes) -> dict[str, bytes]:
    root = etree.fromstring(data, _PROPS_PARSER)
    return {child.tag: etree.tostring(child) for child in root}


def _copy_members(src: str, dst: str) -> None:
    """Copy what the folder ``src`` holds into the folder ``dst``: files with their
    metadata, folders, symlinks as symlinks, ``.davprops`` too, temporary files not.

    Unlike shutil.copytree, which goes on past a failed member and then raises a summary
    without errno, the first failure (a full disk) stops the copy with its own OSError.
    """
    with os.scandir(src) as entries:
        members = [e for e in entries if not e.name.startswith(TEMP_PREFIX)]
    for entry in members:
        target = os.path.join(dst, entry.name)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            os.mkdir(target)
            _copy_members(entry.path, target)
        else:
            shutil.copy2(entry.path, target)
    shutil.copystat(src, dst)


def _os_error(exc: OSError) -> StorageError:
    """Map an OS error to the storage error the protocol layer understands."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage(str(exc))
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return Conflict(str(exc))
    if exc.errno == errno.ENAMETOOLONG:
        return NameTooLong(str(exc))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Forbidden(str(exc))
    if exc.errno == errno.EEXIST:
        return AlreadyExists(str(exc))
    return StorageError(str(exc))


@dataclass(slots=True)
class _Listing:
    """A folder being read by :meth:`FilesystemStorage.children`."""

    path: str
    full: str
    dir_fd: int  # the folder, open: members are stat'ed relative to it (short lookups)
    entries: Any  # the iterator os.scandir returns (it has close())
    side_names: set[str]
    dead_props: bool
    done: bool = False

    def close(self) -> None:
        """Release the folder (once)."""
        if not self.done:
            self.done = True
            self.entries.close()
            os.close(self.dir_fd)


class FilesystemStorage:
    """Serves the files below ``root``; see the module docstring for the layout."""

    reserved_names = frozenset({PROPS_DIR})
    reserved_prefixes = (TEMP_PREFIX,)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._configured_root = root
        self.root = ""
        self._pool: WorkerPool | None = None
        self._temps = Registry()

    async def open(self) -> None:
        """Start the worker threads; create the root folder when missing and resolve it;
        sweep what processes that died in the middle of long writes left (temps.py)."""

        def prepare() -> str:
            os.makedirs(self._configured_root, exist_ok=True)
            self._temps.root = os.path.realpath(self._configured_root)
            self._temps.sweep()
            return self._temps.root

        if self._pool is None:
            self._pool = WorkerPool(asyncio.get_running_loop(), default_threads(), "filesystem")
        self.root = await self._run(prepare)

    # -- helpers (run on the worker threads) --------------------------------------------

    def _run(self, fn: Callable[..., _T], *args: Any) -> Awaitable[_T]:
        """``fn(*args)`` on a worker thread, to be awaited on the event loop that opened
        the storage. (Not asyncio.get_running_loop() each time: on Python 3.11 that is a
        getpid() system call.)"""
        pool = self._pool
        if pool is None:  # not opened, or closed
            return asyncio.get_running_loop().run_in_executor(None, fn, *args)
        return pool.submit(fn, *args)

    def _full(self, path: str, *, check_last: bool = True) -> str:
        """The disk path of ``path``; refuses one that a symlink leads out of the root.

        Only the components below the (already resolved) root are checked, and only a
        component that is a symlink gets resolved, which keeps the common case to one
        lstat per path segment. ``check_last=False`` leaves the last segment unchecked,
        for a caller that makes sure itself not to follow it (O_NOFOLLOW, lstat).
        """
        if not path:
            return self.root
        full = self.root
        segments = path.split("/")
        last = None if check_last else segments.pop()
        for seg in segments:
            full = full + os.sep + seg
            try:
                mode = os.lstat(full).st_mode
            except OSError as exc:
                if exc.errno not in _MISSING:
                    raise
                return os.path.join(self.root, path)
            if stat.S_ISLNK(mode):
                real = os.path.realpath(full)
                if real != self.root and not real.startswith(self.root + os.sep):
                    raise Forbidden(f"{path!r} leads outside the store")
        return full if last is None else full + os.sep + last

    def _props_file(self, path: str, is_collection: bool, full: str | None = None) -> str:
        """Where the dead properties of ``path`` live (``full``: its disk path, if known)."""
        if full is None:
            full = self._full(path)
        if is_collection:
            return os.path.join(full, PROPS_DIR, SELF_PROPS)
        parent, _, name = full.rpartition(os.sep)
        return os.path.join(parent, PROPS_DIR, _member_props_name(name))

    @staticmethod
    def _read_props_file(file: str) -> dict[str, bytes]:
        try:
            with open(file, "rb") as f:
                return _decode_props(f.read())
        except FileNotFoundError:
            return {}
        except etree.XMLSyntaxError:
            return {}

    def _resource(self, path: str, st: os.stat_result, props: DeadProps | None) -> Resource:
        # Positional: a listing makes one per member. Fields: path, is_collection, size,
        # mtime, ctime, etag, content_type, dead_props.
        if stat.S_ISDIR(st.st_mode):
            return Resource(path, True, 0, st.st_mtime, st.st_ctime, _etag(st), None, props)
        return Resource(
            path, False, st.st_size, st.st_mtime, st.st_ctime, _etag(st), _content_type(path), props
        )

    def _stat_sync(self, path: str, dead_props: bool) -> Resource | None:
        try:
            # lstat: the last segment's own check and the answer in one call.
            full = self._full(path, check_last=False)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                st = os.stat(self._full(path))
        except OSError as exc:
            if exc.errno in _MISSING:
                return None
            raise
        props = None
        if dead_props:
            props = self._read_props_file(self._props_file(path, stat.S_ISDIR(st.st_mode), full))
        return self._resource(path, st, props)

    def _visible(self, name: str) -> bool:
        return name not in self.reserved_names and not name.startswith(TEMP_PREFIX)

    def _open_listing(self, path: str, dead_props: bool) -> tuple[_Listing, list[Resource]]:
        """Open the folder and read the first batch (one trip to a worker for most)."""
        full = self._full(path)
        dir_fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            side_names: set[str] = set()
            if dead_props:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    side_names = set(os.listdir(os.path.join(full, PROPS_DIR)))
            listing = _Listing(path, full, dir_fd, os.scandir(dir_fd), side_names, dead_props)
        except BaseException:
            os.close(dir_fd)
            raise
        return listing, self._next_batch(listing)

    def _next_batch(self, listing: _Listing) -> list[Resource]:
        """Up to LISTING_BATCH visible members; closes the listing once it is exhausted."""
        out: list[Resource] = []
        prefix = listing.path + "/" if listing.path else ""
        full = listing.full
        reserved = self.reserved_names
        dead_props = listing.dead_props
        resource = self._resource
        try:
            for entry in listing.entries:
                name = entry.name
                if name in reserved or name.startswith(TEMP_PREFIX):  # see _visible
                    continue
                member = prefix + name
                try:
                    if entry.is_symlink():
                        self._full(member)
                    st = entry.stat()  # relative to listing.dir_fd
                except (Forbidden, OSError):
                    continue
                props = None
                if dead_props:
                    if stat.S_ISDIR(st.st_mode):
                        props = self._read_props_file(
                            os.path.join(full, name, PROPS_DIR, SELF_PROPS)
                        )
                    else:
                        side = _member_props_name(name)
                        props = (
                            self._read_props_file(os.path.join(full, PROPS_DIR, side))
                            if side in listing.side_names
                            else {}
                        )
                out.append(resource(member, st, props))
                if len(out) >= LISTING_BATCH:
                    return out
        except BaseException:
            listing.close()
            raise
        listing.close()
        return out

    def _open_read(self, path: str) -> int:
        """A descriptor of ``path`` open for reading, with the containment rule of _full.

        O_NOFOLLOW spares the lstat of the last segment: when that is a symlink the
        open fails (ELOOP) instead of following it, and _full checks where it leads.
        """
        try:
            return os.open(self._full(path, check_last=False), _READ_NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        return os.open(self._full(path), _READ)

    def _read_sync(self, path: str, inline_limit: int) -> Body:
        try:
            fd = self._open_read(path)
        except OSError as exc:
            if exc.errno in _MISSING:
                raise NotFound(path) from exc
            raise
        handed_over = False
        try:
            st = os.fstat(fd)
            resource = self._resource(path, st, None)
            if stat.S_ISDIR(st.st_mode):
                return Body(resource=resource)
            if st.st_size <= inline_limit:
                return Body(resource=resource, data=_read_whole(fd, st.st_size))
            file = open(fd, "rb")  # noqa: SIM115 - handed to the caller, who closes it
            handed_over = True
            return Body(resource=resource, file=file)
        finally:
            if not handed_over:
                os.close(fd)

    # -- reading ----------------------------------------------------------------------

    async def stat(self, path: str, *, dead_props: bool = False) -> Resource | None:
        """The resource at ``path``, or None."""
        return await self._run(self._stat_sync, path, dead_props)

    async def children(
        self, path: str, *, dead_props: bool = False
    ) -> AsyncIterator[list[Resource]]:
        """The members of the collection at ``path``, in directory order, batch by batch
        as the folder is read (a huge folder is never listed whole in memory)."""
        listing, batch = await self._run(self._open_listing, path, dead_props)
        try:
            while True:
                if batch:
                    yield batch
                if listing.done:
                    return
                batch = await self._run(self._next_batch, listing)
        finally:
            if not listing.done:  # the caller stopped early
                await self._run(listing.close)

    async def read(self, path: str, *, inline_limit: int) -> Body:
        """Open ``path`` for sending."""
        return await self._run(self._read_sync, path, inline_limit)

    async def quota(self, path: str) -> tuple[int, int] | None:
        """Bytes used and available on the filesystem that holds the root."""

        def statvfs() -> tuple[int, int]:
            st = os.statvfs(self.root)
            return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize

        return await self._run(statvfs)

    def change(self, *, author: str, message: str) -> FilesystemChange:
        """Writes on a folder apply as they go; each one is atomic on its own."""
        return FilesystemChange(self)

    async def close(self) -> None:
        """Stop the worker threads once they have finished what is queued."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class FilesystemChange:
    """The write operations of :class:`FilesystemStorage`."""

    def __init__(self, storage: FilesystemStorage) -> None:
        self._s = storage

    # Its own (empty) change block: a class, not @asynccontextmanager, as every write
    # enters one.
    async def __aenter__(self) -> FilesystemChange:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # -- sync parts ---------------------------------------------------------------------

    def _prepare_target(self, path: str) -> tuple[str, int | None]:
        """The disk path of ``path`` and, when something is there, a descriptor of it to
        hold until it has been renamed over (close it with :func:`_release`).

        AlreadyExists for a folder. One lstat per parent segment and an O_PATH open of the
        target; a missing parent (or one that is a file) shows when the temporary file
        cannot be created in it (ENOENT, ENOTDIR: Conflict).

        Why hold the replaced file: rename(2) frees the inode it replaces while it still
        holds the folder's lock, and on a mount with ``discard`` freeing blocks waits for
        the device. Every create and rename in that folder then waits too. With this
        descriptor open the inode is freed at its close instead, outside the lock.
        """
        if not path:
            raise AlreadyExists("the root is a collection")
        full = self._s._full(path, check_last=False)
        try:
            held = os.open(full, _PATH_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return full, None
        except OSError as exc:
            raise _os_error(exc) from exc
        try:
            mode = os.fstat(held).st_mode
            if stat.S_ISLNK(mode):
                full = self._s._full(path)  # refuses a symlink that leads out of the store
                is_dir = os.path.isdir(full)
            else:
                is_dir = stat.S_ISDIR(mode)
            if is_dir:
                raise AlreadyExists(f"{path!r} is a collection")
        except BaseException:
            os.close(held)
            raise
        return full, held

    def _open_temp(self, full: str, *, long: bool = False) -> tuple[str, int]:
        """A new temporary file beside ``full``: its path and a descriptor to write it.
        ``long``: it is registered (temps.py) until :meth:`_commit` or :meth:`_discard`."""
        tmp = os.path.join(os.path.dirname(full), temp_name())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise _os_error(exc) from exc
        if long:
            try:
                self._s._temps.add(tmp, fd)
            except BaseException as exc:
                self._discard(tmp, fd, None)
                if isinstance(exc, OSError):
                    raise _os_error(exc) from exc
                raise
        return tmp, fd

    def _begin(self, path: str, long: bool = False) -> tuple[str, int | None, str, int]:
        """:meth:`_prepare_target` and :meth:`_open_temp`: (full, held, tmp, fd)."""
        full, held = self._prepare_target(path)
        try:
            return (full, held, *self._open_temp(full, long=long))
        except BaseException:
            _release(held)
            raise

    def _discard(self, tmp: str, fd: int | None, held: int | None, long: bool = False) -> None:
        """Drop a temporary file (closing ``fd`` unless already closed; unregistering it
        if ``long``) and the target's descriptor: the target keeps its old bytes."""
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if long:
            self._s._temps.remove(tmp)
        _release(held)

    @staticmethod
    def _write_all(fd: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _commit(
        self, path: str, full: str, tmp: str, fd: int, held: int | None, long: bool = False
    ) -> Resource:
        """Stamp and close the temporary file and rename it over the target. On any
        failure the temporary file goes and the target keeps its old bytes."""
        open_fd: int | None = fd
        try:
            stamp = _unique_mtime_ns()
            os.utime(fd, ns=(stamp, stamp))
            st = os.fstat(fd)
            # close() may report a write that failed late (ENOSPC, EDQUOT on NFS); the
            # descriptor is freed all the same.
            open_fd = None
            os.close(fd)
            os.replace(tmp, full)
        except BaseException as exc:
            self._discard(tmp, open_fd, held, long)
            if isinstance(exc, OSError):
                raise _os_error(exc) from exc
            raise
        if long:
            self._s._temps.remove(tmp)
        try:
            if held is None:
                self._drop_member_props(full)
        except OSError as exc:
            raise _os_error(exc) from exc
        finally:
            _release(held)  # frees the replaced file (see _prepare_target)
        return self._s._resource(path, st, None)

    def _write_small(self, path: str, data: bytes) -> tuple[Resource, bool]:
        full, held, tmp, fd = self._begin(path)
        try:
            self._write_all(fd, data)
        except BaseException as exc:
            self._discard(tmp, fd, held)
            if isinstance(exc, OSError):
                raise _os_error(exc) from exc
            raise
        return self._commit(path, full, tmp, fd, held), held is None

    def _write_file(self, target: str, data: bytes) -> None:
        """Write a small bookkeeping file (dead properties) atomically, through a
        temporary file; on failure nothing changes."""
        tmp, fd = self._open_temp(target)
        open_fd: int | None = fd
        try:
            self._write_all(fd, data)
            open_fd = None
            os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            self._discard(tmp, open_fd, None)
            raise

    @staticmethod
    def _drop_member_props(full: str) -> None:
        parent, _, name = full.rpartition(os.sep)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(os.path.join(parent, PROPS_DIR, _member_props_name(name)))

    # -- writes ---------------------------------------------------------------------------

    async def write(
        self, path: str, body: bytes | AsyncIterator[bytes], expected_size: int | None = None
    ) -> tuple[Resource, bool]:
        """Store a body atomically; see :meth:`backends.base.Change.write`."""
        run = self._s._run
        if isinstance(body, bytes):
            if expected_size is not None and len(body) != expected_size:
                raise ValueError("body length differs from the announced length")
            return await run(self._write_small, path, body)
        full, held, tmp, fd = await run(self._begin, path, True)
        try:
            size = 0
            pending: list[bytes] = []
            buffered = 0
            async for chunk in body:
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BUFFER:
                    await run(self._write_all, fd, b"".join(pending))
                    size += buffered
                    pending, buffered = [], 0
            if pending:
                await run(self._write_all, fd, b"".join(pending))
                size += buffered
            if expected_size is not None and size != expected_size:
                raise ValueError("body length differs from the announced length")
        except BaseException as exc:
            await run(self._discard, tmp, fd, held, True)
            # A ConnectionError comes from the body: the client went away (not the disk).
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                raise _os_error(exc) from exc
            raise
        return await run(self._commit, path, full, tmp, fd, held, True), held is None

    async def mkcol(self, path: str) -> None:
        """Create an empty folder."""

        def mkdir() -> None:
            full = self._s._full(path)
            try:
                os.mkdir(full)
            except FileExistsError as exc:
                raise AlreadyExists(path) from exc
            except OSError as exc:
                raise _os_error(exc) from exc
            self._drop_member_props(full)

        await self._s._run(mkdir)

    async def delete(self, path: str) -> list[DeleteFailure]:
        """Delete a file or a whole folder; report what could not be deleted."""

        def remove() -> list[DeleteFailure]:
            full = self._s._full(path)
            failures: list[DeleteFailure] = []
            try:
                is_dir = os.path.isdir(full) and not os.path.islink(full)
                if not is_dir:
                    os.unlink(full)
                    self._drop_member_props(full)
                    return failures
            except FileNotFoundError as exc:
                raise NotFound(path) from exc
            except OSError as exc:
                raise _os_error(exc) from exc

            def on_error(_fn: Any, failed: str, exc: BaseException) -> None:
                rel = os.path.relpath(failed, self._s.root).replace(os.sep, "/")
                if any(part in self._s.reserved_names for part in rel.split("/")):
                    return
                # A folder left non-empty by a member already reported is not an error of
                # its own: RFC 4918 §9.6.1 leaves such ancestors out of the 207.
                if (
                    isinstance(exc, OSError)
                    and exc.errno == errno.ENOTEMPTY
                    and any(f.path.startswith(rel + "/") for f in failures)
                ):
                    return
                failures.append(DeleteFailure(rel, 403))

            if sys.version_info >= (3, 12):
                shutil.rmtree(full, onexc=on_error)
            else:
                shutil.rmtree(full, onerror=lambda fn, p, info: on_error(fn, p, info[1]))
            return failures

        return await self._s._run(remove)

    async def copy(self, src: str, dst: str, *, recursive: bool) -> None:
        """Copy a file, or a folder with (``recursive``) or without its members. The copy
        is made under a temporary name and renamed into place: a failure or a crash on
        the way leaves no partial destination."""

        def copy() -> None:
            s, d = self._s._full(src), self._s._full(dst)
            try:
                if os.path.isdir(s):
                    self._copy_folder(s, d, recursive)
                else:
                    self._copy_file(s, dst)
            except FileNotFoundError as exc:
                raise NotFound(src) from exc
            except OSError as exc:
                raise _os_error(exc) from exc

        await self._s._run(copy)

    def _copy_folder(self, s: str, d: str, recursive: bool) -> None:
        """Copy the folder ``s`` (disk path) to ``d``, which must not exist, through a
        registered temporary folder beside ``d``."""
        try:
            os.lstat(d)  # also refuses a name too long, before anything is copied
        except FileNotFoundError:
            pass
        else:
            raise AlreadyExists(f"{d!r} exists")
        tmp = os.path.join(os.path.dirname(d), temp_name())
        os.mkdir(tmp)
        fd: int | None = None
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._s._temps.add(tmp, fd)
            if recursive:
                _copy_members(s, tmp)
            else:
                side = os.path.join(s, PROPS_DIR, SELF_PROPS)
                if os.path.exists(side):
                    os.mkdir(os.path.join(tmp, PROPS_DIR))
                    shutil.copyfile(side, os.path.join(tmp, PROPS_DIR, SELF_PROPS))
            os.rename(tmp, d)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if fd is not None:
                os.close(fd)
            self._s._temps.remove(tmp)

    def _copy_file(self, s: str, dst: str) -> None:
        """Copy the file ``s`` (disk path) and its dead properties to ``dst`` (storage
        path), through a registered temporary file."""
        full, held, tmp, fd = self._begin(dst, True)
        open_fd: int | None = fd  # held open while copying: it marks the copy as alive
        try:
            shutil.copyfile(s, tmp)
            stamp = _unique_mtime_ns()
            os.utime(fd, ns=(stamp, stamp))
            self._copy_member_props(s, full, move=False)
            open_fd = None
            os.close(fd)
            os.replace(tmp, full)
        except BaseException:
            self._discard(tmp, open_fd, None, True)
            raise
        finally:
            _release(held)
        self._s._temps.remove(tmp)

    def _copy_member_props(self, s: str, d: str, *, move: bool) -> None:
        """Give ``d`` the dead properties of the file ``s`` (moved or copied), or none."""
        sp, _, sn = s.rpartition(os.sep)
        dp, _, dn = d.rpartition(os.sep)
        side = os.path.join(sp, PROPS_DIR, _member_props_name(sn))
        target = os.path.join(dp, PROPS_DIR, _member_props_name(dn))
        if not os.path.exists(side):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if move:
            os.replace(side, target)
        else:
            with open(side, "rb") as f:
                self._write_file(target, f.read())

    async def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (copying and deleting only where ``dst`` is on another
        filesystem mounted below the root)."""

        def move() -> None:
            s, d = self._s._full(src), self._s._full(dst)
            try:
                if not os.path.isdir(os.path.dirname(d)):
                    raise Conflict(f"the parent of {dst!r} is not a collection")
                is_dir = os.path.isdir(s)
                try:
                    os.rename(s, d)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    shutil.move(s, d)
                if not is_dir:
                    self._copy_member_props(s, d, move=True)
            except FileNotFoundError as exc:
                raise NotFound(src) from exc
            except OSError as exc:
                raise _os_error(exc) from exc

        await self._s._run(move)

    async def set_props(self, path: str, props: Mapping[str, bytes]) -> None:
        """Replace the dead properties of ``path``, atomically."""

        def store() -> None:
            full = self._s._full(path)
            try:
                is_dir = os.path.isdir(full)
                if not is_dir and not os.path.exists(full):
                    raise NotFound(path)
                side = self._s._props_file(path, is_dir)
                if not props:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(side)
                    return
                os.makedirs(os.path.dirname(side), exist_ok=True)
                self._write_file(side, _encode_props(props))
            except OSError as exc:
                raise _os_error(exc) from exc

        await self._s._run(store)
