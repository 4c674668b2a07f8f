"""Temporary files that a process killed mid-write (SIGKILL, the OOM killer) leaves
behind, and how the next start finds and removes them.

Both backends write big things under a temporary name and rename them into place at the
end, so a crash never leaves half a file where a client can see it, only the temporary
file. Whoever writes one holds an ``flock`` on it (:func:`hold`); the lock goes with the
process, so a temporary file nobody holds belongs to a writer that died and is removed
(:func:`remove_if_abandoned`), while one still held is being written by a live process
(another server on the same store) and is left alone.

The git backend keeps its temporary objects in ``objects/``, listed at start. The
filesystem backend writes beside the target, anywhere in the tree; rather than walk the
tree, a long write (a streamed upload, a copy) registers its temporary file in
:class:`Registry` while it runs: a symlink to it in ``<root>/.davtmp-journal/``, a folder
that exists only while such writes are under way. A write of one worker call (a body up
to 256 KiB, a property file) is not registered: its window is a few milliseconds, and
what it could leave is small, hidden and removed with its folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import secrets
import shutil
import stat

TEMP_PREFIX = ".davtmp-"
REGISTRY_DIR = TEMP_PREFIX + "journal"
STOCK_DIR = TEMP_PREFIX + "stock"
"""The folder at a filesystem store's root where a helper makes files ahead of the
writes (davserver/runtime/tempstock.py); it holds no names, only unnamed files."""
UNDO_MAGIC = b"davserver-undo 1\n"
"""How an undo record starts: a registered temporary file that says how to roll back a
file appended to in place (its name in the same folder, inode, old size and times, as
JSON). A sweep that finds one abandoned rolls the file back before removing it."""

_process = ""  # this process's random part of the temporary names


def _new_process_prefix() -> None:
    global _process
    _process = secrets.token_hex(8)


_new_process_prefix()
_counter = itertools.count()
os.register_at_fork(after_in_child=_new_process_prefix)


def temp_name() -> str:
    """A fresh temporary name: a random prefix per process and a counter, which is as
    unique as a random name per file and needs no getrandom() call each time."""
    return f"{TEMP_PREFIX}{_process}-{next(_counter):x}"


def own_temp(name: str) -> bool:
    """Whether ``name`` is a temporary name this process made (:func:`temp_name`)."""
    return name.startswith(f"{TEMP_PREFIX}{_process}-")


def hold(fd: int) -> None:
    """Mark the temporary file (or folder) open as ``fd`` as being written by this
    process; BlockingIOError if a sweep holds it (it is about to be removed)."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def remove_if_abandoned(path: str) -> bool:
    """Remove the temporary file (or folder, with what it holds) at ``path`` unless a
    live process holds it; whether it is gone. It is removed under the lock, so a writer
    that made it just now finds it unlinked once it gets the lock (see git_objects.py)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _roll_back(path, os.pread(fd, 4096, 0))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return True
    finally:
        os.close(fd)


def _roll_back(path: str, record: bytes) -> None:
    """Undo an append cut short by a crash, as the undo record ``record`` (the bytes of
    the temporary file ``path``) says: the file it names gets its old size and times
    back, if it is still the same file (its inode)."""
    if not record.startswith(UNDO_MAGIC):
        return
    try:
        undo = json.loads(record[len(UNDO_MAGIC) :])
        target = os.path.join(os.path.dirname(path), os.path.basename(str(undo["name"])))
        fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        if os.fstat(fd).st_ino == undo["ino"]:
            os.ftruncate(fd, int(undo["size"]))
            os.utime(fd, ns=(int(undo["atime_ns"]), int(undo["mtime_ns"])))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    finally:
        os.close(fd)


class Registry:
    """The long writes under way below a filesystem store's root (see the module doc).

    ``root`` (resolved) is set by the store's ``open()``.
    """

    def __init__(self) -> None:
        self.root = ""

    @property
    def _folder(self) -> str:
        return os.path.join(self.root, REGISTRY_DIR)

    def add(self, tmp: str, fd: int) -> None:
        """Register the temporary file (or folder) ``tmp`` below the root, open as ``fd``,
        before anything is written to it."""
        hold(fd)
        link = "../" + tmp[len(self.root) + 1 :]  # relative to the registry folder
        entry = os.path.join(self._folder, os.path.basename(tmp))
        while True:
            try:
                os.symlink(link, entry)
                return
            except FileNotFoundError:  # no write under way, or the last one just ended
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self._folder)

    def remove(self, tmp: str) -> None:
        """Unregister ``tmp`` (renamed into place or dropped), and the registry folder
        when it was the last one."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._folder, os.path.basename(tmp)))
        with contextlib.suppress(OSError):  # ENOTEMPTY: other writes are under way
            os.rmdir(self._folder)

    def sweep(self) -> None:
        """Remove the registered temporary files whose writers died, with their entries."""
        folder = self._folder
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            entry = os.path.join(folder, name)
            try:
                tmp = os.path.normpath(os.path.join(folder, os.readlink(entry)))
            except OSError:
                continue
            inside = tmp.startswith(self.root + os.sep)
            if (
                inside
                and os.path.basename(tmp).startswith(TEMP_PREFIX)
                and not remove_if_abandoned(tmp)
            ):
                continue  # its writer is alive
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry)
        with contextlib.suppress(OSError):
            os.rmdir(folder)
