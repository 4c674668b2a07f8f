"""The filesystem backend's dealings with single files: ETags, stamps, property-file
names, and what an OS error means to the protocol layer. Everything here runs on the
storage's worker threads."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import threading
import time

from davserver.runtime import closer

from .base import (
    NAME_MAX,
    AlreadyExists,
    Conflict,
    Forbidden,
    InsufficientStorage,
    NameTooLong,
    Resource,
    StorageError,
)
from .mime import content_type
from .temps import TEMP_PREFIX

PROPS_DIR = ".davprops"
SELF_PROPS = "self"
_MAX_SIDE_NAME = 200
_SIDE_TAG = len("m.")

# What reading a path fails with when nothing is there, or can be (a name too long).
MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})

READ = os.O_RDONLY | os.O_CLOEXEC
READ_NOFOLLOW = READ | os.O_NOFOLLOW
PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_last_mtime_ns = 0
_mtime_lock = threading.Lock()


def unique_mtime_ns() -> int:
    """Now, in nanoseconds, and never the same value twice in this process.

    Every write stamps its file with this, so the ETag (inode, mtime, size) changes on
    every write even when the filesystem's clock is coarse and inodes get reused.
    """
    global _last_mtime_ns
    with _mtime_lock:
        _last_mtime_ns = max(time.time_ns(), _last_mtime_ns + 1)
        return _last_mtime_ns


def stamp_ns(mtime: float | None) -> int:
    """The modification time a write gives its file: :func:`unique_mtime_ns`, or the
    second a client asked for (``mtime``) with unique nanoseconds, so that the ETag
    (inode, mtime, size) still differs from every earlier one while the second, all that
    ``getlastmodified`` and clients see, is the client's."""
    unique = unique_mtime_ns()
    if mtime is None:
        return unique
    return int(mtime) * 1_000_000_000 + unique % 1_000_000_000


def splice(src: int, dst: int, src_at: int, dst_at: int, count: int) -> None:
    """Copy ``count`` bytes from descriptor ``src`` (from ``src_at``) into ``dst`` (at
    ``dst_at``), in the kernel where it can (copy_file_range), else through memory."""
    done = 0
    kernel = True
    while done < count:
        want = min(count - done, 1 << 24)
        n = 0
        if kernel:
            try:
                n = os.copy_file_range(src, dst, want, src_at + done, dst_at + done)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                kernel = False
        if n == 0:
            data = os.pread(src, min(want, 1 << 20), src_at + done)
            if not data:
                raise OSError(errno.EIO, "the source ended early")
            written = 0
            while written < len(data):
                written += os.pwrite(dst, data[written:], dst_at + done + written)
            n = len(data)
        done += n


def read_whole(fd: int, size: int) -> bytes:
    """The ``size`` bytes of a small file (fewer if it shrank meanwhile): one read()
    in the common case, without the buffered reader's extra fstat and EOF probe."""
    data = os.read(fd, size)
    while len(data) < size and (more := os.read(fd, size - len(data))):
        data += more
    return data


def release(held: int | None) -> None:
    """Close the descriptor of a replaced file (see filesystem_change.py: why it is held);
    freeing the file may fall to a helper process (davserver/runtime/closer.py)."""
    if held is not None:
        closer.close(held)


def etag_of(st: os.stat_result) -> str:
    """The ETag of a file or folder: inode, mtime and size, in hex."""
    # %-formatting: 40 % less time than an f-string's three format specs (a listing
    # makes one per member, a PROPFIND Depth 1 of 1,000 files 0.15 ms less).
    return '"%x-%x-%x"' % (st.st_ino, st.st_mtime_ns, st.st_size)  # noqa: UP031


def resource_of(path: str, st: os.stat_result, props: dict[str, bytes] | None) -> Resource:
    """The resource at storage path ``path`` with stat result ``st``."""
    # Positional: a listing makes one per member. Fields: path, is_collection, size,
    # mtime, ctime, etag, content_type, dead_props.
    if stat.S_ISDIR(st.st_mode):
        return Resource(path, True, 0, st.st_mtime, st.st_ctime, etag_of(st), None, props)
    return Resource(
        path, False, st.st_size, st.st_mtime, st.st_ctime, etag_of(st), content_type(path), props
    )


def member_props_name(name: str) -> str:
    """The name of a member's property file in its folder's ``.davprops``: ``m.<name>``,
    or a hash when that would be long (over 200 characters, or too long for the disk)."""
    if len(name) > _MAX_SIDE_NAME or len(os.fsencode(name)) > NAME_MAX - _SIDE_TAG:
        return "h." + hashlib.sha256(name.encode()).hexdigest()
    return "m." + name


def member_props_file(full: str) -> str:
    """The property file of the file at disk path ``full``."""
    parent, _, name = full.rpartition(os.sep)
    return os.path.join(parent, PROPS_DIR, member_props_name(name))


def copy_members(src: str, dst: str) -> None:
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
            copy_members(entry.path, target)
        else:
            shutil.copy2(entry.path, target)
    shutil.copystat(src, dst)


def storage_error(exc: OSError) -> StorageError:
    """The storage error an OS error means to the protocol layer."""
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
