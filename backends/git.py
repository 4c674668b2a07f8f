"""A branch of a git repository as a DAV store: every write block is one commit.

Reads come from the branch head. A ``change()`` block edits an in-memory copy of the head
tree (see :mod:`.git_tree`, :mod:`.git_layout`), streaming bodies into blobs as it goes,
without holding any lock. At its end, under the repository's commit lock, the edits
become one commit whose ref update is compare-and-swap: when the branch moved meanwhile
(another request, or a ``git push``), the block's operations are replayed on the new
head and the swap retried, so history stays linear and nothing is lost. Every dulwich
and disk call runs in the default thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import logging
import mimetypes
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo

from .base import (
    Body,
    DeadProps,
    DeleteFailure,
    InsufficientStorage,
    NotFound,
    Resource,
    StorageError,
    Version,
)
from .git_history import lookup, versions
from .git_index import PathTimes
from .git_layout import (
    PROPS_DIR,
    RESERVED,
    SELF_PROPS,
    DavTree,
    decode_props,
    member_props_name,
    segments,
)
from .git_objects import BlobWriter, ObjectReader, read_small, store_bytes, sweep_temps
from .git_tree import Entry, TreeEditor

LISTING_BATCH = 512
WRITE_BUFFER = 1 << 20
COMMIT_ATTEMPTS = 20
ANONYMOUS = "anonymous"
STALE_LOCK_AGE = 60.0

log = logging.getLogger("davserver.git")
# The ref files this process is writing right now (every GitStorage of it: two mounts may
# serve one branch): their lock files are live, whatever their age.
_writing: set[str] = set()
_writing_lock = threading.Lock()

_T = TypeVar("_T")
_HEX = re.compile(rb"[0-9a-f]{40}([0-9a-f]{24})?\Z")
mimetypes.init()  # reads the system's MIME tables now, not on the event loop later


class BranchBusy(StorageError):
    """The branch kept moving under a commit; the client may try again."""

    status = 503


@contextlib.contextmanager
def _writing_ref(ref_file: str) -> Iterator[None]:
    """Mark ``ref_file`` as being written by this process while the block runs."""
    with _writing_lock:
        _writing.add(ref_file)
    try:
        yield
    finally:
        with _writing_lock:
            _writing.discard(ref_file)


@functools.lru_cache(maxsize=1024)
def _type_of_extension(ext: str) -> str:
    return mimetypes.guess_type("x." + ext, strict=False)[0] or "application/octet-stream"


def _content_type(path: str) -> str:
    return _type_of_extension(path.rpartition("/")[2].rpartition(".")[2])


def _etag(sha: bytes) -> str:
    return f'"{sha.decode()}"'


def identity_of(author: str, default: str) -> bytes:
    """The git identity a change by ``author`` is recorded as.

    Anonymous changes get ``default`` ("Name <email>"); a user name without an address
    gets one in the domain of ``default``'s address.
    """
    name = re.sub(r"[<>\x00-\x1f]", "", author).strip()
    if author == ANONYMOUS or not name:
        return default.encode()
    if re.fullmatch(r"[^<>\n]+ <[^<>\n]+>", author):
        return author.encode()
    domain = default.rpartition("@")[2].rstrip(">").strip() or "localhost"
    local = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return f"{name} <{local}@{domain}>".encode()


@dataclass(slots=True)
class _Listing:
    """A collection being listed by :meth:`GitStorage.children`."""

    path: str
    entries: list[tuple[str, Entry]]
    side: Mapping[bytes, Entry]
    dead_props: bool


class GitStorage:
    """Serves branch ``branch`` of the repository at ``repo`` (bare or not).

    ``identity`` ("Name <email>") records anonymous changes; ``state_dir`` keeps the
    path-times index between runs; a ref lock file older than ``stale_lock_age`` seconds
    that no writer of this process holds was left by a git that crashed, and is removed.
    """

    reserved_names = RESERVED
    reserved_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        repo: str | os.PathLike[str],
        *,
        branch: str = "main",
        identity: str = "davserver <davserver@localhost>",
        state_dir: Path | None = None,
        stale_lock_age: float = STALE_LOCK_AGE,
    ) -> None:
        self.path = Path(repo)
        self.stale_lock_age = stale_lock_age
        self.branch = branch
        self.ref = b"refs/heads/" + branch.encode()
        self.identity = identity
        self._state_dir = state_dir
        self._index_file: Path | None = None
        self._repo: Repo | None = None
        self._reader: ObjectReader | None = None
        self._ref_file = ""
        self._times = PathTimes(RESERVED)
        self._repo_lock = threading.Lock()
        self._commit_lock = asyncio.Lock()
        self._started = time.time()
        self._empty_tree = Tree().id
        # Property files never change (they are named by content), so neither do their
        # decoded contents.
        self._props_blob: Callable[[bytes], Mapping[str, bytes]] = functools.lru_cache(
            maxsize=4096
        )(self._load_props)

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the repository if it exists (it is created by the first write otherwise),
        remove the temporary objects of uploads cut short by a crash, and bring the
        path-times index up to date."""
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        if self._state_dir is not None:
            key = f"{self.path.resolve()}\0{self.branch}".encode()
            name = hashlib.sha256(key).hexdigest()[:24] + ".json"
            self._index_file = self._state_dir / "git" / name
        try:
            repo = Repo(str(self.path))
            sweep_temps(os.fspath(repo.object_store.path))
            self._attach(repo)
        except NotGitRepository:
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise NotADirectoryError(
                    f"{self.path}: exists and is not a git repository"
                ) from None
        if self._index_file is not None:
            self._times.load(self._index_file)
        self._snapshot()

    def _attach(self, repo: Repo) -> None:
        self._repo = repo
        self._reader = ObjectReader(repo.object_store)
        self._ref_file = os.path.join(repo.commondir(), *self.ref.decode().split("/"))
        self._empty_tree = self._reader.empty_tree

    def _ensure_repo(self) -> ObjectReader:
        with self._repo_lock:
            if self._reader is None:
                try:
                    repo = Repo(str(self.path))
                except NotGitRepository:
                    self.path.mkdir(parents=True, exist_ok=True)
                    repo = Repo.init_bare(str(self.path), default_branch=self.branch.encode())
                self._attach(repo)
            assert self._reader is not None
            return self._reader

    async def close(self) -> None:
        """Save the index and close the repository."""

        def close() -> None:
            if self._index_file is not None and self._times.head is not None:
                with self._times.lock:
                    self._times.save(self._index_file)
            if self._repo is not None:
                self._repo.close()

        await self._run(close)

    # -- helpers (run in the thread pool) -------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in the thread pool; a full disk or quota is InsufficientStorage
        (507), whatever call found it (a blob, a tree, the ref)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(str(exc)) from exc
            raise

    def _read_head(self) -> bytes | None:
        """The commit the branch points at now (None for an unborn branch)."""
        if self._repo is None:
            return None
        try:
            data = read_small(self._ref_file, 100).strip()
            if _HEX.match(data):
                return data
        except (FileNotFoundError, NotADirectoryError):
            pass
        try:
            return self._repo.refs[self.ref]
        except KeyError:
            return None

    def _snapshot(self) -> tuple[bytes | None, bytes]:
        """The head commit and its root tree, with the index brought up to it."""
        head = self._read_head()
        if head != self._times.head:
            with self._times.lock:
                # Read again under the lock: a reader that raced a commit must not move
                # the index back to the head it saw first.
                head = self._read_head()
                if self._reader is not None:
                    self._times.follow(self._reader, head)
        if head is None or self._reader is None:
            return None, self._empty_tree
        return head, self._reader.commit(head).tree

    def _lookup(self, path: str) -> tuple[bytes | None, Entry | None]:
        head, tree = self._snapshot()
        if self._reader is None:
            return head, (stat.S_IFDIR, tree) if not path else None
        return head, lookup(self._reader, tree, segments(path))

    def _times_of(self, path: str, head: bytes | None) -> tuple[float, float]:
        known = self._times.get(path)
        if known is not None:
            return known
        when = float(self._reader.commit(head).commit_time) if head and self._reader else 0.0
        when = when or self._started
        return when, when

    def _resource(
        self, path: str, entry: Entry, head: bytes | None, props: DeadProps | None
    ) -> Resource:
        is_dir = stat.S_ISDIR(entry[0])
        ctime, mtime = self._times_of(path, head)
        return Resource(
            path=path,
            is_collection=is_dir,
            size=0 if is_dir or self._reader is None else self._reader.blob_size(entry[1]),
            mtime=mtime,
            ctime=ctime,
            etag=_etag(entry[1]),
            content_type=None if is_dir else _content_type(path),
            dead_props=props,
        )

    def _load_props(self, sha: bytes) -> Mapping[str, bytes]:
        assert self._reader is not None
        return MappingProxyType(decode_props(self._reader.raw(sha)[1]))

    def _side_entries(self, folder: Entry | None) -> Mapping[bytes, Entry]:
        """The entries of a folder's ``.davprops`` tree ({} when it has none)."""
        if folder is None or self._reader is None or not stat.S_ISDIR(folder[0]):
            return {}
        side = self._reader.tree(folder[1]).get(PROPS_DIR.encode())
        if side is None or not stat.S_ISDIR(side[0]):
            return {}
        return self._reader.tree(side[1])

    def _props_in(self, side: Mapping[bytes, Entry], name: bytes) -> Mapping[str, bytes]:
        entry = side.get(name)
        if entry is None or not stat.S_ISREG(entry[0]):
            return {}
        return self._props_blob(entry[1])

    def _at(self, head: bytes, path: str) -> Entry | None:
        assert self._reader is not None
        return lookup(self._reader, self._reader.commit(head).tree, segments(path))

    # -- reading --------------------------------------------------------------------------

    async def stat(self, path: str, *, dead_props: bool = False) -> Resource | None:
        """The resource at ``path`` in the branch head, or None."""
        return await self._run(self._stat_sync, path, dead_props)

    def _stat_sync(self, path: str, dead_props: bool) -> Resource | None:
        head, entry = self._lookup(path)
        if entry is None:
            return None
        props = None
        if dead_props:
            props = self._member_props(path, entry, head)
        return self._resource(path, entry, head, props)

    def _member_props(self, path: str, entry: Entry, head: bytes | None) -> Mapping[str, bytes]:
        if stat.S_ISDIR(entry[0]):
            return self._props_in(self._side_entries(entry), SELF_PROPS.encode())
        parent, _, name = path.rpartition("/")
        folder = self._at(head, parent) if head else None
        return self._props_in(self._side_entries(folder), member_props_name(name.encode()))

    async def children(
        self, path: str, *, dead_props: bool = False
    ) -> AsyncIterator[list[Resource]]:
        """The members of the collection at ``path``, in tree order, batch by batch."""
        head, listing = await self._run(self._open_listing, path, dead_props)
        for start in range(0, len(listing.entries), LISTING_BATCH):
            yield await self._run(self._batch, head, listing, start)

    def _open_listing(self, path: str, dead_props: bool) -> tuple[bytes | None, _Listing]:
        head, entry = self._lookup(path)
        members: list[tuple[str, Entry]] = []
        side: Mapping[bytes, Entry] = {}
        if entry is not None and stat.S_ISDIR(entry[0]) and self._reader is not None:
            for raw, child in self._reader.tree(entry[1]).items():
                if not (stat.S_ISDIR(child[0]) or stat.S_ISREG(child[0])):
                    continue
                try:
                    name = raw.decode()
                except UnicodeDecodeError:
                    continue
                if name not in RESERVED:
                    members.append((name, child))
            if dead_props:
                side = self._side_entries(entry)
        return head, _Listing(path, members, side, dead_props)

    def _batch(self, head: bytes | None, listing: _Listing, start: int) -> list[Resource]:
        prefix = listing.path + "/" if listing.path else ""
        out = []
        for name, entry in listing.entries[start : start + LISTING_BATCH]:
            props = None
            if listing.dead_props:
                if stat.S_ISDIR(entry[0]):
                    props = self._props_in(self._side_entries(entry), SELF_PROPS.encode())
                else:
                    props = self._props_in(listing.side, member_props_name(name.encode()))
            out.append(self._resource(prefix + name, entry, head, props))
        return out

    async def read(self, path: str, *, inline_limit: int) -> Body:
        """Open ``path`` in the branch head for sending."""
        return await self._run(self._read_sync, path, inline_limit)

    def _read_sync(self, path: str, inline_limit: int) -> Body:
        head, entry = self._lookup(path)
        if entry is None:
            raise NotFound(path)
        return self._body(self._resource(path, entry, head, None), entry, inline_limit)

    def _body(self, resource: Resource, entry: Entry, inline_limit: int) -> Body:
        if resource.is_collection or self._reader is None:
            return Body(resource=resource)
        _size, content = self._reader.open_blob(entry[1], inline_limit)
        if isinstance(content, bytes):
            return Body(resource=resource, data=content)
        return Body(resource=resource, file=content)  # type: ignore[arg-type]

    async def quota(self, path: str) -> tuple[int, int] | None:
        """Bytes used and available on the filesystem that holds the repository."""

        def statvfs() -> tuple[int, int]:
            where = self.path if self.path.exists() else self.path.parent
            st = os.statvfs(where)
            return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize

        return await self._run(statvfs)

    # -- history --------------------------------------------------------------------------

    async def versions(self, path: str) -> list[Version]:
        """Every version of ``path`` on the branch's first-parent line, newest first."""

        def walk() -> list[Version]:
            head, _ = self._snapshot()
            if self._reader is None:
                return []
            return versions(self._reader, head, segments(path))

        return await self._run(walk)

    async def read_version(self, path: str, version: str, *, inline_limit: int) -> Body:
        """The file ``path`` as of commit ``version`` (a full hex id)."""
        return await self._run(self._read_version_sync, path, version, inline_limit)

    def _read_version_sync(self, path: str, version: str, inline_limit: int) -> Body:
        sha = version.encode()
        if self._reader is None or not _HEX.match(sha):
            raise NotFound(version)
        try:
            commit = self._reader.commit(sha)
        except (KeyError, ValueError) as exc:
            raise NotFound(version) from exc
        entry = lookup(self._reader, commit.tree, segments(path))
        if entry is None or not stat.S_ISREG(entry[0]):
            raise NotFound(f"{path} in {version}")
        when = float(commit.commit_time)
        resource = Resource(
            path=path,
            is_collection=False,
            size=self._reader.blob_size(entry[1]),
            mtime=when,
            ctime=when,
            etag=_etag(entry[1]),
            content_type=_content_type(path),
        )
        return self._body(resource, entry, inline_limit)

    # -- writing --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def change(self, *, author: str, message: str) -> AsyncIterator[GitChange]:
        """One commit for the whole block, made when it ends without an exception (and
        only if it changed something)."""
        change = await self._run(self._begin)
        yield change
        if change.ops:
            async with self._commit_lock:
                await self._run(self._commit, change, identity_of(author, self.identity), message)

    def _begin(self) -> GitChange:
        reader = self._ensure_repo()
        head, tree = self._snapshot()
        return GitChange(self, head, self._dav_tree(reader, tree if head else None))

    def _dav_tree(self, reader: ObjectReader, tree: bytes | None) -> DavTree:
        assert self._repo is not None
        store = self._repo.object_store
        return DavTree(TreeEditor(reader, tree), functools.partial(store_bytes, store))

    def _commit(self, change: GitChange, identity: bytes, message: str) -> None:
        """Turn the block's edits into a commit on the branch (compare-and-swap, replaying
        the edits on a head that moved)."""
        assert self._repo is not None and self._reader is not None
        store = self._repo.object_store
        refs = self._repo.refs
        locked = ""  # the lock file that stopped the last attempt
        for attempt in range(COMMIT_ATTEMPTS):
            head = self._read_head()
            if head != change.base:
                tree = self._reader.commit(head).tree if head else None
                change.replay(head, self._dav_tree(self._reader, tree))
            root = change.tree.editor.write(store)
            if root == (self._reader.commit(head).tree if head else self._empty_tree):
                return
            commit = Commit()
            commit.tree = root
            commit.parents = [head] if head else []
            commit.author = commit.committer = identity
            commit.author_time = commit.commit_time = int(change.when)
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = message.encode() + b"\n"
            store.add_object(commit)
            new = commit.get_id(store.object_format)
            reflog = b"davserver: " + message.encode()
            locked = ""
            try:
                with _writing_ref(self._ref_file):
                    if head is None:
                        done = refs.add_if_new(self.ref, new, committer=identity, message=reflog)
                    else:
                        done = refs.set_if_equals(
                            self.ref, head, new, committer=identity, message=reflog
                        )
            except FileLocked as exc:  # a `git push` holds the ref's lock, or a crash left it
                done = False
                locked = os.fsdecode(exc.lockfilename)
                if self._remove_stale_lock(locked):
                    continue
            if done:
                with self._times.lock:
                    self._times.follow(self._reader, self._read_head())
                return
            time.sleep(0.01 * attempt)
        if locked:
            raise BranchBusy(
                f"{self._repo_relative(locked)} exists: a git process is writing "
                f"{self.ref.decode()}, or one that crashed left it (it is removed once it is "
                f"{self.stale_lock_age:g} s old); the change was not recorded"
            )
        raise BranchBusy(f"{self.ref.decode()} kept moving; the change was not recorded")

    def _repo_relative(self, path: str) -> str:
        assert self._repo is not None
        return os.path.relpath(path, self._repo.commondir())

    def _remove_stale_lock(self, lock: str) -> bool:
        """Remove the lock file ``lock`` if it is stale: older than ``stale_lock_age`` and
        not held by a writer of this process. Whether the ref may be tried again at once."""
        with _writing_lock:
            if lock.removesuffix(".lock") in _writing:
                return False
        try:
            st = os.stat(lock)
        except FileNotFoundError:
            return True  # released meanwhile
        age = time.time() - st.st_mtime
        if age < self.stale_lock_age:
            return False
        # Moved aside first (a name git ignores, as it ends in .lock), then checked: if
        # another process removed the stale file and took the lock for itself since the
        # stat, that fresh lock is put back, not deleted.
        aside = f"{lock[:-5]}.stale-{os.getpid()}-{secrets.token_hex(4)}.lock"
        try:
            os.rename(lock, aside)
        except FileNotFoundError:
            return True
        moved = os.stat(aside)
        if (moved.st_ino, moved.st_mtime_ns) != (st.st_ino, st.st_mtime_ns):
            with contextlib.suppress(FileExistsError):
                os.link(aside, lock)
            os.unlink(aside)
            return False
        os.unlink(aside)
        log.warning(
            "%s: removed the stale lock file %s (%.0f s old, no writer holds it; left by a "
            "git process that crashed)",
            self.path, self._repo_relative(lock), age,
        )  # fmt: skip
        return True


class GitChange:
    """The writes of one ``change()`` block, applied to a copy of the head tree as they
    come and recorded so that they can be replayed on a newer head."""

    def __init__(self, storage: GitStorage, base: bytes | None, tree: DavTree) -> None:
        self._s = storage
        self.base = base
        self.tree = tree
        self.ops: list[Callable[[DavTree], object]] = []
        self.when = time.time()

    def replay(self, head: bytes | None, tree: DavTree) -> None:
        """Apply every recorded operation again, on ``tree`` (the tree of ``head``)."""
        for op in self.ops:
            op(tree)
        self.base, self.tree = head, tree

    def _apply(self, op: Callable[[DavTree], _T]) -> _T:
        result = op(self.tree)
        self.ops.append(op)
        self.when = time.time()
        return result

    async def _do(self, op: Callable[[DavTree], _T]) -> _T:
        return await self._s._run(self._apply, op)

    async def write(
        self, path: str, body: bytes | AsyncIterator[bytes], expected_size: int | None = None
    ) -> tuple[Resource, bool]:
        """Store the body as a blob, then place it at ``path``."""
        segs = segments(path)
        if isinstance(body, bytes):
            if expected_size is not None and len(body) != expected_size:
                raise ValueError("body length differs from the announced length")
            sha, size, created = await self._s._run(self._write_small, segs, body)
        else:
            await self._s._run(self.tree.check_writable, segs)
            sha, size = await self._stream(body, expected_size)
            created = await self._do(lambda t: t.write(segs, sha))
        known = None if created else self._s._times.get(path)
        ctime = known[0] if known else self.when
        resource = Resource(
            path=path,
            is_collection=False,
            size=size,
            mtime=float(int(self.when)),
            ctime=min(ctime, float(int(self.when))),
            etag=_etag(sha),
            content_type=_content_type(path),
        )
        return resource, created

    def _write_small(self, segs: list[bytes], body: bytes) -> tuple[bytes, int, bool]:
        """A body given whole, in one trip to the thread pool."""
        self.tree.check_writable(segs)
        assert self._s._repo is not None
        sha = store_bytes(self._s._repo.object_store, body)
        return sha, len(body), self._apply(lambda t: t.write(segs, sha))

    async def _stream(
        self, body: AsyncIterator[bytes], expected_size: int | None
    ) -> tuple[bytes, int]:
        """Stream a body into a blob; return its id and size."""
        assert self._s._repo is not None
        store = self._s._repo.object_store
        run = self._s._run
        writer = await run(BlobWriter, store, expected_size)
        try:
            pending: list[bytes] = []
            buffered = 0
            async for chunk in body:
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BUFFER:
                    await run(writer.add, b"".join(pending))
                    pending, buffered = [], 0
            if pending:
                await run(writer.add, b"".join(pending))
        except BaseException:
            await run(writer.abort)
            raise
        return await run(writer.finish)

    async def mkcol(self, path: str) -> None:
        """Create an empty collection (a tree holding the placeholder)."""
        segs = segments(path)
        await self._do(lambda t: t.mkcol(segs))

    async def delete(self, path: str) -> list[DeleteFailure]:
        """Delete the resource and everything below it (never partly)."""
        segs = segments(path)
        await self._do(lambda t: t.delete(segs))
        return []

    async def copy(self, src: str, dst: str, *, recursive: bool) -> None:
        """Copy ``src`` to ``dst``: a tree entry copied, whatever its size."""
        s, d = segments(src), segments(dst)
        await self._do(lambda t: t.copy(s, d, recursive=recursive))

    async def move(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst``."""
        s, d = segments(src), segments(dst)
        await self._do(lambda t: t.move(s, d))

    async def set_props(self, path: str, props: Mapping[str, bytes]) -> None:
        """Replace the dead properties of ``path``."""
        segs, kept = segments(path), dict(props)
        await self._do(lambda t: t.set_props(segs, kept))
