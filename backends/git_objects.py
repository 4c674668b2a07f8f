"""Git objects read and written in chunks, so a big blob never sits whole in memory.

dulwich inflates a whole object at once. Here loose objects and undeltified packed objects
are inflated as a stream; only a deltified packed object (which needs its base) goes
through dulwich whole. Everything runs in the caller's thread (the backend's thread pool).

A blob being written lives in ``objects/tmp_obj_davserver_*`` until it is complete; its
writer holds it (temps.py), and :func:`sweep_temps` removes those of writers that died.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from dulwich.object_store import DiskObjectStore
from dulwich.objects import Commit, ObjectID, ShaFile, Tree, parse_tree
from dulwich.pack import Pack

from .git_packs import PackSet
from .temps import hold, remove_if_abandoned

CHUNK = 1 << 20
_TYPES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
_BLOB = 3
_DELTAS = (6, 7)  # OFS_DELTA, REF_DELTA
_PROBE = 64 << 10
# "tmp_obj_" is git's own name for objects being written (`git prune` reaps old ones);
# the rest tells this server's apart, which only it may sweep.
_TEMP_PREFIX = "tmp_obj_davserver_"

TreeEntries = Mapping[bytes, tuple[int, ObjectID]]


class _Inflater:
    """The inflated content of one object, read forward from its place on disk.

    A loose object is zlib over ``"<type> <size>\\0" + content``; a packed one is a
    varint header (type, size) followed by zlib over the content alone.
    """

    def __init__(self, path: str, offset: int | None) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._zlib = zlib.decompressobj()
        self._pending = b""
        try:
            if offset is None:
                self.type, self.size = self._loose_header()
            else:
                self.type, self.size = self._pack_header(offset)
        except BaseException:
            self._file.close()
            raise

    def _loose_header(self) -> tuple[int, int]:
        while b"\0" not in self._pending:
            more = self._inflate(64)
            if not more:
                raise ValueError("truncated loose object")
            self._pending += more
        head, _, self._pending = self._pending.partition(b"\0")
        kind, _, size = head.partition(b" ")
        return _TYPES[kind], int(size)

    def _pack_header(self, offset: int) -> tuple[int, int]:
        self._file.seek(offset)
        header = self._file.read(32)
        kind = (header[0] >> 4) & 7
        size = header[0] & 15
        shift, i = 4, 0
        while header[i] & 0x80:
            i += 1
            size |= (header[i] & 0x7F) << shift
            shift += 7
        self._file.seek(offset + i + 1)
        return kind, size

    def _inflate(self, limit: int) -> bytes:
        while True:
            tail = self._zlib.unconsumed_tail
            if tail:
                return self._zlib.decompress(tail, limit)
            if self._zlib.eof:
                return b""
            raw = self._file.read(CHUNK // 4)
            if not raw:
                return b""
            out = self._zlib.decompress(raw, limit)
            if out:
                return out

    def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of content; b"" at the end."""
        if self._pending:
            out, self._pending = self._pending[:limit], self._pending[limit:]
            return out
        return self._inflate(limit)

    def read_all(self) -> bytes:
        """The rest of the content."""
        parts = [self._pending]
        self._pending = b""
        while chunk := self._inflate(CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class BlobStream(io.RawIOBase):
    """A blob's bytes as a read-only, seekable file.

    ``seek`` only records the position (no I/O, so asyncio may call it on the event
    loop); ``readinto`` inflates up to it, starting over for a backward seek. Having no
    ``fileno``, it makes ``loop.sendfile`` fall back to reads in the thread pool.
    """

    def __init__(self, opener: Callable[[], _Inflater], size: int) -> None:
        super().__init__()
        self._open = opener
        self._inflater: _Inflater | None = None
        self._at = 0  # position of the inflater
        self._want = 0  # position the next read starts at
        self.size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._want, io.SEEK_END: self.size}[whence]
        self._want = max(0, base + offset)
        return self._want

    def tell(self) -> int:
        return self._want

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._inflater is None or self._want < self._at:
            self._reopen()
        assert self._inflater is not None
        while self._at < self._want:
            skipped = self._inflater.read(min(CHUNK, self._want - self._at))
            if not skipped:
                return 0
            self._at += len(skipped)
        data = self._inflater.read(len(buffer))
        buffer[: len(data)] = data
        self._at += len(data)
        self._want = self._at
        return len(data)

    def _reopen(self) -> None:
        if self._inflater is not None:
            self._inflater.close()
        self._inflater = self._open()
        self._at = 0

    def close(self) -> None:
        if self._inflater is not None:
            self._inflater.close()
            self._inflater = None
        super().close()


TREE_CACHE_ENTRIES = 1 << 16
"""Entries of parsed trees kept in memory per repository (about 200 bytes each)."""


class _TreeCache:
    """Parsed trees, the least recently used dropped first, bounded by their total number
    of entries rather than of trees: a tree of 1,000 entries weighs what 1,000 small ones
    do. Shared by the worker threads."""

    def __init__(self, load: Callable[[ObjectID], TreeEntries], max_entries: int) -> None:
        self._load = load
        self._max = max_entries
        self._held = 0
        self._trees: OrderedDict[ObjectID, TreeEntries] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, sha: ObjectID) -> TreeEntries:
        with self._lock:
            tree = self._trees.get(sha)
            if tree is not None:
                self._trees.move_to_end(sha)
                return tree
        tree = self._load(sha)
        with self._lock:
            if sha not in self._trees:
                self._trees[sha] = tree
                self._held += len(tree) + 1
                while self._held > self._max:
                    _, dropped = self._trees.popitem(last=False)
                    self._held -= len(dropped) + 1
        return tree


class ObjectReader:
    """Reads objects of one store, caching what never changes: trees, commits, sizes.

    A loose object is looked for first, then the packs; packs replaced meanwhile (the
    upkeep, a `git gc`) are rescanned, never a failed read (git_packs.py).
    """

    def __init__(self, store: DiskObjectStore) -> None:
        self.store = store
        self.packs = PackSet(store)
        """The store's packs (git_packs.py): every packed object is read through them."""
        self._dir = os.fspath(store.path)
        self._sha_len = store.object_format.oid_length
        self.empty_tree = ObjectID(Tree().get_id(store.object_format))
        self.tree: Callable[[ObjectID], TreeEntries] = _TreeCache(
            self._load_tree, TREE_CACHE_ENTRIES
        )
        self.commit: Callable[[ObjectID], Commit] = functools.lru_cache(maxsize=4096)(
            self._load_commit
        )
        self.blob_size: Callable[[ObjectID], int] = functools.lru_cache(maxsize=1 << 14)(
            self._load_size
        )

    def loose_path(self, sha: ObjectID) -> str:
        """Where the loose object ``sha`` (hex) lives or would live."""
        hexsha = sha.decode("ascii")
        return os.path.join(self._dir, hexsha[:2], hexsha[2:])

    def _inflater(self, sha: ObjectID) -> _Inflater | None:
        """An inflater positioned at the content of ``sha``, or None for a delta."""
        try:
            return _Inflater(self.loose_path(sha), None)
        except FileNotFoundError:
            pass  # packed (perhaps just now, by the upkeep or a `git gc`)

        def open_packed(pack: Pack, path: str) -> _Inflater:
            return _Inflater(path, pack.index.object_offset(sha))

        inflater = self.packs.lookup(sha, open_packed)
        if inflater.type in _DELTAS:
            inflater.close()
            return None
        return inflater

    def _packed_raw(self, sha: ObjectID) -> tuple[int, bytes]:
        """The type number and content of a packed object (a delta resolved)."""
        return self.packs.lookup(sha, lambda pack, _path: pack.get_raw(sha))

    def raw(self, sha: ObjectID) -> tuple[int, bytes]:
        """The type number and content of an object (whole, for small objects)."""
        try:
            with open(self.loose_path(sha), "rb") as f:
                data = zlib.decompress(f.read())
        except FileNotFoundError:
            return self._packed_raw(sha)
        head, _, content = data.partition(b"\0")
        return _TYPES[head.partition(b" ")[0]], content

    def _load_tree(self, sha: ObjectID) -> TreeEntries:
        if sha == self.empty_tree:  # git knows it without storing it
            return {}
        kind, content = self.raw(sha)
        if kind != 2:
            raise ValueError(f"{sha!r} is not a tree")
        return {
            name: (mode, ObjectID(child))
            for name, mode, child in parse_tree(content, self._sha_len)
        }

    def _load_commit(self, sha: ObjectID) -> Commit:
        kind, content = self.raw(sha)
        obj = ShaFile.from_raw_string(kind, content, sha, object_format=self.store.object_format)
        if not isinstance(obj, Commit):
            raise ValueError(f"{sha!r} is not a commit")
        return obj

    def _load_size(self, sha: ObjectID) -> int:
        inflater = self._inflater(sha)
        if inflater is None:
            return len(self._packed_raw(sha)[1])
        inflater.close()
        return inflater.size

    def _small_loose(self, sha: ObjectID, limit: int) -> bytes | None:
        """The content of a loose object of at most ``limit`` bytes, read in one go
        (the common case of a small file); None for anything else."""
        try:
            packed = read_small(self.loose_path(sha), limit + 1)
        except FileNotFoundError:
            return None
        if len(packed) > limit:
            return None
        inflate = zlib.decompressobj()
        data = inflate.decompress(packed, limit + 64)
        if not inflate.eof:
            return None
        head, _, content = data.partition(b"\0")
        return content if len(content) <= limit and head.startswith(b"blob ") else None

    def open_blob(self, sha: ObjectID, inline_limit: int) -> tuple[int, bytes | BlobStream]:
        """A blob's size and its bytes (up to ``inline_limit``) or a stream of them."""
        small = self._small_loose(sha, inline_limit)
        if small is not None:
            return len(small), small
        inflater = self._inflater(sha)
        if inflater is None:
            data = self._packed_raw(sha)[1]
            return len(data), data
        size = inflater.size
        if size <= inline_limit:
            try:
                return size, inflater.read_all()
            finally:
                inflater.close()
        inflater.close()

        def reopen() -> _Inflater:
            again = self._inflater(sha)
            assert again is not None
            return again

        return size, BlobStream(reopen, size)


def copy_blob_range(
    reader: ObjectReader, sha: ObjectID, start: int, end: int, add: Callable[[bytes], None]
) -> None:
    """Hand bytes ``start`` to ``end`` (exclusive) of the blob ``sha`` to ``add``, in
    pieces of at most CHUNK bytes, never holding the blob whole (unless it is a delta)."""
    if end <= start:
        return
    _size, content = reader.open_blob(sha, CHUNK)
    if isinstance(content, bytes):
        for at in range(start, end, CHUNK):
            add(content[at : min(end, at + CHUNK)])
        return
    with content:
        content.seek(start)
        left = end - start
        while left > 0:
            piece = content.read(min(CHUNK, left))
            if not piece:
                raise ValueError(f"blob {sha!r} ended early")
            add(piece)
            left -= len(piece)


class BlobWriter:
    """Builds one loose blob from chunks, never holding it whole.

    With the size known up front, chunks are hashed and compressed as they come; without
    it they are spooled raw to a temporary file first (the object header needs the size).
    Either way the object appears under ``objects/`` only once complete.
    """

    def __init__(self, store: DiskObjectStore, size: int | None) -> None:
        self._store = store
        self._dir = os.fspath(store.path)
        self._declared = size
        self._received = 0
        self._temp, self._file = _new_temp(self._dir)
        self._header = b"" if size is None else b"blob %d\0" % size
        self._hash = store.object_format.new_hash()
        self._level = store.loose_compression_level
        self._zlib: Any = None  # made with the first bytes, which choose the level

    def _encode(self, chunk: bytes) -> None:
        if self._zlib is None:
            self._zlib = zlib.compressobj(_level(self._level, chunk))
            self._hash.update(self._header)
            self._file.write(self._zlib.compress(self._header))
        self._hash.update(chunk)
        self._file.write(self._zlib.compress(chunk))

    def add(self, chunk: bytes) -> None:
        """Append bytes to the blob."""
        self._received += len(chunk)
        if self._declared is None:
            self._file.write(chunk)
        elif self._received <= self._declared:
            self._encode(chunk)

    def finish(self) -> tuple[ObjectID, int]:
        """Install the object; return its id (hex) and size.

        Raises ValueError (leaving nothing behind) when the bytes received differ from
        the size declared.
        """
        try:
            if self._declared is not None and self._received != self._declared:
                raise ValueError("body length differs from the announced length")
            if self._declared is None:
                self._encode_spool()
            self._encode(b"")
            self._file.write(self._zlib.flush())
            self._file.flush()
            if self._store.fsync_object_files:  # core.fsyncObjectFiles
                os.fsync(self._file.fileno())
            self._file.close()
            sha = ObjectID(self._hash.hexdigest().encode("ascii"))
            _install(self._temp, os.path.join(self._dir, sha[:2].decode(), sha[2:].decode()))
        except BaseException:
            self.abort()
            raise
        return sha, self._received

    def _encode_spool(self) -> None:
        """Turn the raw spool into the compressed object, in a second temporary file."""
        spool = self._temp
        # Opened before the writer lets go of it (and of its lock): a sweep starting
        # meanwhile may unlink the spool, but cannot take its bytes away.
        with open(spool, "rb") as raw:
            self._file.close()
            self._temp, self._file = _new_temp(self._dir)
            try:
                self._header = b"blob %d\0" % self._received
                while chunk := raw.read(CHUNK):
                    self._encode(chunk)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(spool)

    def abort(self) -> None:
        """Drop what was written (a close that fails, flushing onto a full disk, too)."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


def _new_temp(directory: str) -> tuple[str, io.BufferedWriter]:
    """A new temporary object file in ``directory``, held by this process (temps.py).

    A sweep in another process starting just now may take the file between its creation
    and :func:`hold`: then it is unlinked (or about to be), and another is made.
    """
    while True:
        fd, path = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
        try:
            hold(fd)
            if os.fstat(fd).st_nlink:
                return path, os.fdopen(fd, "wb")
        except BlockingIOError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def sweep_temps(objects_dir: str) -> None:
    """Remove the temporary objects of this server's writers that died mid-write."""
    for name in os.listdir(objects_dir):
        if name.startswith(_TEMP_PREFIX):
            remove_if_abandoned(os.path.join(objects_dir, name))


def store_bytes(store: DiskObjectStore, data: bytes) -> ObjectID:
    """Store a small blob given whole; return its id (hex). Existing objects are kept."""
    fmt = store.object_format
    header = b"blob %d\0" % len(data)
    hasher = fmt.new_hash()
    hasher.update(header)
    hasher.update(data)
    sha = ObjectID(hasher.hexdigest().encode("ascii"))
    target = os.path.join(os.fspath(store.path), sha[:2].decode(), sha[2:].decode())
    try:
        os.utime(target)  # freshen, so a concurrent `git prune` keeps it
        return sha
    except FileNotFoundError:
        pass
    writer = BlobWriter(store, len(data))
    try:
        writer.add(data)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()[0]


def read_small(path: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of a file, with the fewest system calls (no buffered file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _level(configured: int, sample: bytes) -> int:
    """The zlib level for a loose object that starts with ``sample``.

    git's default for loose objects is the fastest level (core.looseCompression = 1),
    but even that crawls at ~50 MB/s over bytes that do not compress (photos, archives),
    so those are stored uncompressed; `git gc` compresses them again when it packs.
    """
    if configured != -1:
        return configured
    probe = sample[:_PROBE]
    if len(probe) >= 4096 and len(zlib.compress(probe, 1)) > len(probe) * 0.9:
        return 0
    return 1


def _install(temp: str, target: str) -> None:
    os.chmod(temp, 0o444)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(temp, target)
