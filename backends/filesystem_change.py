"""The writes of the filesystem backend (see filesystem.py for the layout).

Each write is atomic on its own: bytes go to a temporary file beside the target, which is
renamed over it. The rename, and the check of the write's preconditions against what it
replaces, happen together under the path's lock (pathlocks.py), so of two racing
conditional writes only one can see the state it expects. Each write reports what it
changed to the storage's listener once it is done.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from davserver.runtime import tempstock

from .base import (
    AlreadyExists,
    Changed,
    ChangeKind,
    Conflict,
    DeleteFailure,
    NotFound,
    Precondition,
    PreconditionFailed,
    PropsUpdate,
    RangeNotSatisfiable,
    Resource,
    check_name,
)
from .disk import (
    MISSING,
    PATH_NOFOLLOW,
    PROPS_DIR,
    SELF_PROPS,
    copy_members,
    member_props_file,
    release,
    resource_of,
    splice,
    stamp_ns,
    storage_error,
    unique_mtime_ns,
)
from .temps import UNDO_MAGIC, temp_name
from .uploads import pieces

if TYPE_CHECKING:
    from .filesystem import FilesystemStorage


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _check(expect: Precondition | None, current: Resource | None) -> None:
    if expect is not None:
        expect(current)


class _Temp:
    """A registered temporary file beside a target, open as ``fd``: installed over the
    target once, or discarded (both close the descriptor exactly once)."""

    def __init__(self, change: FilesystemChange, path: str, fd: int) -> None:
        self._change = change
        self.path = path
        self.fd = fd
        self._open = True
        self._gone = False

    def _close(self) -> None:
        if self._open:
            self._open = False
            os.close(self.fd)

    def install(self, path: str, full: str, *, drop_props: bool = True) -> Resource:
        """Stamp it and rename it to ``full`` (the path's lock is held); a new file has
        no dead properties."""
        stamp = unique_mtime_ns()
        os.utime(self.fd, ns=(stamp, stamp))
        placed = _placed(self.path)
        try:
            self._close()
            os.replace(self.path, full)
            self._gone = True
            st = os.fstat(placed)
        finally:
            _close_placed(placed)
        self._change._s.temps.remove(self.path)
        if drop_props:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(member_props_file(full))
        return resource_of(path, st, None)

    def discard(self) -> None:
        """Drop it (nothing once installed)."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                os.close(self.fd)
        if not self._gone:
            self._gone = True
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._change._s.temps.remove(self.path)


class FilesystemChange:
    """The write operations of :class:`FilesystemStorage`, on behalf of ``author``."""

    def __init__(self, storage: FilesystemStorage, author: str) -> None:
        self._s = storage
        self._author = author

    # Its own (empty) change block: a class, not @asynccontextmanager, as every write
    # enters one.
    async def __aenter__(self) -> FilesystemChange:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _changed(
        self, path: str, kind: ChangeKind, is_collection: bool, old: Resource | None = None,
        new: Resource | None = None, to: str | None = None, note: object = None,
    ) -> Changed:  # fmt: skip
        return Changed(
            path, kind, is_collection, self._author,
            old.etag if old is not None else None, new.etag if new is not None else None,
            to, note, resource=new if kind in ("created", "modified") else None,
        )  # fmt: skip

    # -- sync parts (worker threads) -------------------------------------------------------

    def _current(self, path: str, full: str) -> tuple[Resource | None, int | None]:
        """What is at ``path`` now (disk path ``full``, its parents checked): its resource
        and, for a file, a descriptor of it to hold until it has been renamed over (close
        it with :func:`release`).

        Why hold the replaced file: rename(2) frees the inode it replaces while it still
        holds the folder's lock, and on a mount with ``discard`` freeing blocks waits for
        the device. Every create and rename in that folder then waits too. With this
        descriptor open the inode is freed at its close instead, outside the lock.
        """
        try:
            held = os.open(full, PATH_NOFOLLOW)
        except OSError as exc:
            if exc.errno in MISSING:
                return None, None
            raise storage_error(exc) from exc
        try:
            st = os.fstat(held)
            if stat.S_ISLNK(st.st_mode):
                st = os.stat(self._s.full_path(path))  # refuses one that leads out
            if stat.S_ISDIR(st.st_mode):
                os.close(held)
                return resource_of(path, st, None), None
        except BaseException:
            os.close(held)
            raise
        return resource_of(path, st, None), held

    def _open_temp(self, full: str, *, long: bool = False) -> tuple[str, int]:
        """A new temporary file beside ``full``: its path and a descriptor to write it.
        ``long``: it is registered (temps.py) until :meth:`_commit` or :meth:`_discard`.
        A missing parent (or one that is a file) shows here (ENOENT, ENOTDIR: Conflict).
        The file is one a helper made ahead when there is one at hand (tempstock.py)."""
        tmp = os.path.join(os.path.dirname(full), temp_name())
        stock = self._s.stock
        fd = None if stock is None else tempstock.place(stock, tmp)
        if fd is None:
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise storage_error(exc) from exc
        if long:
            try:
                self._s.temps.add(tmp, fd)
            except BaseException as exc:
                self._discard(tmp, fd)
                if isinstance(exc, OSError):
                    raise storage_error(exc) from exc
                raise
        return tmp, fd

    def _begin(self, path: str, long: bool = False) -> tuple[str, str, int]:
        """The target's disk path and a temporary file beside it: (full, tmp, fd).
        AlreadyExists at once for a folder (so a big upload to one is refused before its
        body is read); the check that counts comes again at the rename."""
        if not path:
            raise AlreadyExists("the root is a collection")
        check_name(path)
        full = self._s.full_path(path, check_last=False)
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(full).st_mode):
                raise AlreadyExists(f"{path!r} is a collection")
        return (full, *self._open_temp(full, long=long))

    def _discard(self, tmp: str, fd: int | None, long: bool = False) -> None:
        """Drop a temporary file (closing ``fd`` unless already closed; unregistering it
        if ``long``): the target keeps its old bytes."""
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if long:
            self._s.temps.remove(tmp)

    def _commit(
        self, path: str, full: str, tmp: str, fd: int, expect: Precondition | None,
        long: bool = False, mtime: float | None = None,
    ) -> tuple[Resource, Resource | None]:  # fmt: skip
        """Stamp and close the temporary file, then, holding the path's lock, check the
        precondition against what is there and rename over it: (new, replaced). On any
        failure the temporary file goes and the target keeps its old bytes."""
        open_fd: int | None = fd
        placed: int | None = None
        held: int | None = None
        try:
            stamp = stamp_ns(mtime)
            os.utime(fd, ns=(stamp, stamp))
            placed = _placed(tmp)
            # close() may report a write that failed late (ENOSPC, EDQUOT on NFS); the
            # descriptor is freed all the same.
            open_fd = None
            os.close(fd)
            with self._s.locks.hold(full):
                old, held = self._current(path, full)
                if old is not None and old.is_collection:
                    raise AlreadyExists(f"{path!r} is a collection")
                _check(expect, old)
                os.replace(tmp, full)
            st = os.fstat(placed)
        except BaseException as exc:
            release(held)
            self._discard(tmp, open_fd, long)
            if isinstance(exc, OSError):
                raise storage_error(exc) from exc
            raise
        finally:
            if placed is not None:
                _close_placed(placed)
        if long:
            self._s.temps.remove(tmp)
        try:
            if old is None:
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    os.unlink(member_props_file(full))
        except OSError as exc:
            raise storage_error(exc) from exc
        finally:
            release(held)  # frees the replaced file (see _current)
        return resource_of(path, st, None), old

    def _write_small(
        self, path: str, data: bytes, expect: Precondition | None, mtime: float | None = None
    ) -> tuple[Resource, Resource | None]:
        """A body in memory, in one worker call. Unlike :meth:`_begin` it does not lstat
        the target first to refuse a folder early: with the body already read there is
        nothing to spare, and :meth:`_commit` refuses a folder under the lock anyway."""
        if not path:
            raise AlreadyExists("the root is a collection")
        check_name(path)
        full = self._s.full_path(path, check_last=False)
        tmp, fd = self._open_temp(full)
        try:
            _write_all(fd, data)
        except BaseException as exc:
            self._discard(tmp, fd)
            if isinstance(exc, OSError):
                raise storage_error(exc) from exc
            raise
        return self._commit(path, full, tmp, fd, expect, mtime=mtime)

    def _write_file(self, target: str, data: bytes) -> None:
        """Write a small bookkeeping file (dead properties) atomically, through a
        temporary file; on failure nothing changes."""
        tmp, fd = self._open_temp(target)
        open_fd: int | None = fd
        try:
            _write_all(fd, data)
            open_fd = None
            os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            self._discard(tmp, open_fd)
            raise

    def _lstat(self, path: str, full: str) -> Resource | None:
        """What is at ``path`` now, not following a last symlink (None: nothing)."""
        try:
            st = os.lstat(full)
        except OSError as exc:
            if exc.errno in MISSING:
                return None
            raise storage_error(exc) from exc
        if stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(self._s.full_path(path))
            except OSError as exc:
                if exc.errno in MISSING:
                    return None
                raise storage_error(exc) from exc
        return resource_of(path, st, None)

    # -- writes ---------------------------------------------------------------------------

    async def write(
        self,
        path: str,
        body: bytes | AsyncIterator[bytes],
        expected_size: int | None = None,
        *,
        expect: Precondition | None = None,
        note: object = None,
        mtime: float | None = None,
    ) -> tuple[Resource, bool]:
        """Store a body atomically; see :meth:`backends.base.FileChange.write`."""
        run = self._s.run
        if isinstance(body, bytes):
            if expected_size is not None and len(body) != expected_size:
                raise ValueError("body length differs from the announced length")
            res, old = await run(self._write_small, path, body, expect, mtime)
        else:
            res, old = await self._stream(path, body, expected_size, expect, mtime)
        kind: ChangeKind = "created" if old is None else "modified"
        await self._s.emit([self._changed(path, kind, False, old, res, note=note)])
        return res, old is None

    async def _stream(
        self, path: str, body: AsyncIterator[bytes], expected_size: int | None,
        expect: Precondition | None, mtime: float | None = None,
    ) -> tuple[Resource, Resource | None]:  # fmt: skip
        run = self._s.run
        full, tmp, fd = await run(self._begin, path, True)
        await self._receive(tmp, fd, body, expected_size)
        return await run(self._commit, path, full, tmp, fd, expect, True, mtime)

    async def _receive(
        self, tmp: str, fd: int, body: bytes | AsyncIterator[bytes], expected_size: int | None
    ) -> int:
        """Write the body into the (registered) temporary file ``tmp``; its length. On any
        failure the temporary file goes."""
        run = self._s.run
        try:
            size = 0
            if isinstance(body, bytes):
                await run(_write_all, fd, body)
                size = len(body)
            else:
                async for piece in pieces(body):
                    await run(_write_all, fd, piece)
                    size += len(piece)
            if expected_size is not None and size != expected_size:
                raise ValueError("body length differs from the announced length")
        except BaseException as exc:
            await run(self._discard, tmp, fd, True)
            # A ConnectionError comes from the body: the client went away (not the disk).
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                raise storage_error(exc) from exc
            raise
        return size

    async def update(
        self,
        path: str,
        offset: int | None,
        body: bytes | AsyncIterator[bytes],
        expected_size: int | None = None,
        *,
        expect: Precondition | None = None,
        create: bool = False,
        note: object = None,
    ) -> tuple[Resource, bool]:
        """A ranged write; see :meth:`backends.base.FileChange.update`.

        The body goes to a temporary file first (no lock is held while it arrives). Then,
        under the path's lock: bytes that only extend the file are appended in place,
        with an undo record (temps.py) that a crash leaves behind for the next start to
        roll back; any other range is written into a copy of the file, renamed over it.
        """
        run = self._s.run
        full, tmp, fd = await run(self._begin, path, True)
        size = await self._receive(tmp, fd, body, expected_size)
        received = _Temp(self, tmp, fd)
        try:
            res, old = await run(
                self._place_range, path, full, received, offset, size, expect, create
            )
        finally:
            await run(received.discard)
        kind: ChangeKind = "created" if old is None else "modified"
        await self._s.emit([self._changed(path, kind, False, old, res, note=note)])
        return res, old is None

    def _place_range(
        self, path: str, full: str, received: _Temp, offset: int | None, size: int,
        expect: Precondition | None, create: bool,
    ) -> tuple[Resource, Resource | None]:  # fmt: skip
        """Apply the received bytes at ``offset`` of ``path`` (under the path's lock)."""
        with self._s.locks.hold(full):
            old, held = self._current(path, full)
            try:
                if old is not None and old.is_collection:
                    raise AlreadyExists(f"{path!r} is a collection")
                _check(expect, old)
                if old is None:
                    if not create:
                        raise NotFound(path)
                    if offset not in (None, 0):
                        raise RangeNotSatisfiable(f"{path!r} is new: it starts at 0", 0)
                    return received.install(path, full), None
                start = old.size if offset is None else offset
                if start < 0:
                    start += old.size
                if not 0 <= start <= old.size:
                    raise RangeNotSatisfiable(f"{path!r} is {old.size} bytes long", old.size)
                if start == old.size:
                    appended = self._append(path, full, received.fd, size)
                    if appended is not None:
                        return appended, old
                return self._rewrite(path, full, received.fd, old, start, size), old
            except OSError as exc:
                raise storage_error(exc) from exc
            finally:
                release(held)

    def _append(self, path: str, full: str, src: int, size: int) -> Resource | None:
        """Append ``size`` bytes of ``src`` to the file in place, with an undo record
        (its old size and time) registered beside it while the bytes go in: a failure
        truncates it back at once, a crash at the next start (temps.py). None when the
        file cannot be written in place (a symlink: it is replaced instead)."""
        try:
            target = os.open(full, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise
        undo: _Temp | None = None
        try:
            st = os.fstat(target)
            record = json.dumps(
                {"name": os.path.basename(full), "ino": st.st_ino, "size": st.st_size,
                 "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns}
            ).encode()  # fmt: skip
            undo = _Temp(self, *self._open_temp(full, long=True))
            _write_all(undo.fd, UNDO_MAGIC + record)
            try:
                splice(src, target, 0, st.st_size, size)
                stamp = unique_mtime_ns()
                os.utime(target, ns=(stamp, stamp))
                return resource_of(path, os.fstat(target), None)
            except BaseException:
                os.ftruncate(target, st.st_size)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
                raise
        finally:
            os.close(target)
            if undo is not None:
                undo.discard()

    def _rewrite(
        self, path: str, full: str, src_fd: int, old: Resource, start: int, size: int
    ) -> Resource:
        """Write a copy of the file with ``size`` bytes of ``src_fd`` at ``start``, and
        rename it over the file."""
        copy = _Temp(self, *self._open_temp(full, long=True))
        try:
            current = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if resource_of(path, os.fstat(current), None).etag != old.etag:
                    raise PreconditionFailed(f"{path!r} changed while the range was written")
                splice(current, copy.fd, 0, 0, start)
                splice(src_fd, copy.fd, 0, start, size)
                tail = start + size
                if tail < old.size:
                    splice(current, copy.fd, tail, tail, old.size - tail)
            finally:
                os.close(current)
            return copy.install(path, full, drop_props=False)
        finally:
            copy.discard()

    async def set_mtime(
        self, path: str, mtime: float, *, expect: Precondition | None = None
    ) -> Resource:
        """Set the file's (or folder's) modification time."""

        def touch() -> tuple[Resource, Resource]:
            full = self._s.full_path(path)
            with self._s.locks.hold(full):
                old = self._lstat(path, full)
                if old is None:
                    raise NotFound(path)
                _check(expect, old)
                stamp = stamp_ns(mtime)
                try:
                    os.utime(full, ns=(stamp, stamp))
                    return old, resource_of(path, os.stat(full), None)
                except OSError as exc:
                    raise storage_error(exc) from exc

        old, res = await self._s.run(touch)
        await self._s.emit([self._changed(path, "props", res.is_collection, old, res)])
        return res

    async def mkcol(self, path: str) -> None:
        """Create an empty folder."""

        def mkdir() -> Resource:
            check_name(path)
            full = self._s.full_path(path)
            try:
                os.mkdir(full)
                st = os.stat(full)
            except FileExistsError as exc:
                raise AlreadyExists(path) from exc
            except OSError as exc:
                raise storage_error(exc) from exc
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(member_props_file(full))
            return resource_of(path, st, None)

        res = await self._s.run(mkdir)
        await self._s.emit([self._changed(path, "created", True, new=res)])

    async def delete(self, path: str, *, expect: Precondition | None = None) -> list[DeleteFailure]:
        """Delete a file or a whole folder; report what could not be deleted."""
        old, failures = await self._s.run(self._delete_sync, path, expect)
        if not failures:
            await self._s.emit([self._changed(path, "deleted", old.is_collection, old)])
        return failures

    def _delete_sync(
        self, path: str, expect: Precondition | None
    ) -> tuple[Resource, list[DeleteFailure]]:
        full = self._s.full_path(path)
        with self._s.locks.hold(full):
            old = self._lstat(path, full)
            if old is None:
                raise NotFound(path)
            _check(expect, old)
            try:
                if not (os.path.isdir(full) and not os.path.islink(full)):
                    os.unlink(full)
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        os.unlink(member_props_file(full))
                    return old, []
            except FileNotFoundError as exc:
                raise NotFound(path) from exc
            except OSError as exc:
                raise storage_error(exc) from exc
            return old, self._remove_tree(full)

    def _remove_tree(self, full: str) -> list[DeleteFailure]:
        failures: list[DeleteFailure] = []

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

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        recursive: bool,
        expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:
        """Copy a file, or a folder with (``recursive``) or without its members. The copy
        is made under a temporary name and renamed into place: a failure or a crash on
        the way leaves no partial destination."""

        def copy() -> tuple[Resource, Resource | None, Resource]:
            check_name(dst)
            s, d = self._s.full_path(src), self._s.full_path(dst)
            try:
                source = self._lstat(src, s)
                if source is None:
                    raise NotFound(src)
                _check(expect, source)
                if source.is_collection:
                    old, new = self._copy_folder(dst, s, d, recursive, expect_dst)
                else:
                    old, new = self._copy_file(s, dst, expect_dst)
            except FileNotFoundError as exc:
                raise NotFound(src) from exc
            except OSError as exc:
                raise storage_error(exc) from exc
            return source, old, new

        source, old, new = await self._s.run(copy)
        changes = [] if old is None else [self._changed(dst, "deleted", old.is_collection, old)]
        changes.append(self._changed(dst, "created", source.is_collection, new=new))
        await self._s.emit(changes)

    def _copy_folder(
        self, dst: str, s: str, d: str, recursive: bool, expect_dst: Precondition | None
    ) -> tuple[None, Resource]:
        """Copy the folder ``s`` (disk path) to ``d``, which must be free, through a
        registered temporary folder beside ``d``."""
        try:
            os.lstat(d)  # also refuses a name too long, before anything is copied
        except FileNotFoundError:
            pass
        else:
            raise AlreadyExists(f"{dst!r} exists")
        tmp = os.path.join(os.path.dirname(d), temp_name())
        os.mkdir(tmp)
        fd: int | None = None
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._s.temps.add(tmp, fd)
            if recursive:
                copy_members(s, tmp)
            else:
                side = os.path.join(s, PROPS_DIR, SELF_PROPS)
                if os.path.exists(side):
                    os.mkdir(os.path.join(tmp, PROPS_DIR))
                    shutil.copyfile(side, os.path.join(tmp, PROPS_DIR, SELF_PROPS))
            with self._s.locks.hold(d):
                if self._lstat(dst, d) is not None:
                    raise AlreadyExists(f"{dst!r} exists")
                _check(expect_dst, None)
                os.rename(tmp, d)
            return None, resource_of(dst, os.stat(d), None)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if fd is not None:
                os.close(fd)
            self._s.temps.remove(tmp)

    def _copy_file(
        self, s: str, dst: str, expect_dst: Precondition | None
    ) -> tuple[Resource | None, Resource]:
        """Copy the file ``s`` (disk path) and its dead properties to ``dst`` (storage
        path), through a registered temporary file; a file there is replaced."""
        full, tmp, fd = self._begin(dst, True)
        open_fd: int | None = fd  # held open while copying: it marks the copy as alive
        placed: int | None = None
        held: int | None = None
        try:
            shutil.copyfile(s, tmp)
            stamp = unique_mtime_ns()
            os.utime(fd, ns=(stamp, stamp))
            placed = _placed(tmp)
            open_fd = None
            os.close(fd)
            with self._s.locks.hold(full):
                old, held = self._current(dst, full)
                if old is not None and old.is_collection:
                    raise AlreadyExists(f"{dst!r} is a collection")
                _check(expect_dst, old)
                self._copy_member_props(s, full, move=False)
                os.replace(tmp, full)
            st = os.fstat(placed)
        except BaseException:
            self._discard(tmp, open_fd, True)
            raise
        finally:
            release(held)
            if placed is not None:
                _close_placed(placed)
        self._s.temps.remove(tmp)
        return old, resource_of(dst, st, None)

    def _copy_member_props(self, s: str, d: str, *, move: bool) -> None:
        """Give ``d`` the dead properties of the file ``s`` (moved or copied), or none."""
        side = member_props_file(s)
        target = member_props_file(d)
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

    async def move(
        self,
        src: str,
        dst: str,
        *,
        expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:
        """Rename ``src`` to ``dst`` (copying and deleting only where ``dst`` is on another
        filesystem mounted below the root); a file at ``dst`` is replaced."""

        def move() -> tuple[Resource, Resource | None]:
            check_name(dst)
            s, d = self._s.full_path(src), self._s.full_path(dst)
            try:
                if not os.path.isdir(os.path.dirname(d)):
                    raise Conflict(f"the parent of {dst!r} is not a collection")
                with self._s.locks.hold(s, d):
                    source = self._lstat(src, s)
                    if source is None:
                        raise NotFound(src)
                    _check(expect, source)
                    old = self._lstat(dst, d)
                    if old is not None and (old.is_collection or source.is_collection):
                        raise AlreadyExists(f"{dst!r} exists")
                    _check(expect_dst, old)
                    try:
                        os.rename(s, d)
                    except OSError as exc:
                        if exc.errno != errno.EXDEV:
                            raise
                        shutil.move(s, d)
                    if not source.is_collection:
                        self._copy_member_props(s, d, move=True)
            except FileNotFoundError as exc:
                raise NotFound(src) from exc
            except OSError as exc:
                raise storage_error(exc) from exc
            return source, old

        source, old = await self._s.run(move)
        changes = [] if old is None else [self._changed(dst, "deleted", False, old)]
        changes.append(self._changed(src, "moved", source.is_collection, source, source, dst))
        await self._s.emit(changes)

    async def set_props(
        self,
        path: str,
        props: Mapping[str, bytes] | PropsUpdate,
        *,
        expect: Precondition | None = None,
        note: object = None,
    ) -> None:
        """Replace the dead properties of ``path`` (or update those there), atomically."""

        def store() -> Resource:
            full = self._s.full_path(path)
            with self._s.locks.hold(full):
                res = self._lstat(path, full)
                if res is None:
                    raise NotFound(path)
                _check(expect, res)
                try:
                    side = self._s.props_file(path, res.is_collection)
                    new = props(self._s.read_props_file(side)) if callable(props) else props
                    if not new:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(side)
                        return res
                    os.makedirs(os.path.dirname(side), exist_ok=True)
                    self._write_file(side, self._s.codec.encode(new))
                except OSError as exc:
                    raise storage_error(exc) from exc
            return res

        res = await self._s.run(store)
        await self._s.emit([self._changed(path, "props", res.is_collection, res, res, note=note)])


def _placed(tmp: str) -> int:
    """A read-only descriptor of the temporary file ``tmp``, to state the file once it is
    renamed into place: the rename moves its ctime (the creationdate), and what a write
    returns (what the calendar index keeps) must be what a stat gives afterwards. Read-only,
    so that closing it after the rename tells no watcher of a write to the file."""
    return os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)


def _close_placed(fd: int) -> None:
    """Close a descriptor from :func:`_placed` (a read-only one has nothing to report)."""
    with contextlib.suppress(OSError):
        os.close(fd)
