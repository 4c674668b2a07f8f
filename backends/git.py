"""A branch of a git repository as a DAV store: every write block is one commit.

Reads come from the branch head. A ``change()`` block edits an in-memory copy of the head
tree (see :mod:`.git_tree`, :mod:`.git_layout`), streaming bodies into blobs as it goes,
without holding any lock. At its end, under the repository's commit lock, the edits
become one commit whose ref update is compare-and-swap: when the branch moved meanwhile
(a ``git push``), the block's operations are replayed on the new head and the swap
retried, so history stays linear and nothing is lost. The commit lock is an ``flock``
on the repository's ``davserver-commit.lock``, so the worker processes of one host take
turns instead of losing the swap to each other (under load two workers retrying against
each other could lose it 20 times in a row: 503). Every dulwich and disk call runs in
the storage's worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from davserver.runtime import metrics
from davserver.runtime.affinity import spread
from davserver.runtime.threads import WorkerPool, default_threads

from .base import (
    Body,
    Changed,
    ChangeKind,
    ChangeListener,
    DeadProps,
    DeleteFailure,
    Feed,
    InsufficientStorage,
    NotFound,
    Precondition,
    PreconditionFailed,
    PropsCodec,
    PropsUpdate,
    RangeNotSatisfiable,
    Resource,
    StorageError,
    Version,
)
from .git_feed import TreeFeed
from .git_gc import LOOSE_THRESHOLD, Packed, estimate_loose
from .git_history import lookup, versions
from .git_index import PathTimes, mtime_trailers
from .git_layout import (
    PROPS_DIR,
    RESERVED,
    SELF_PROPS,
    DavTree,
    member_props_name,
    props_path,
    segments,
)
from .git_objects import (
    BlobWriter,
    ObjectReader,
    copy_blob_range,
    read_small,
    store_bytes,
    sweep_temps,
)
from .git_repack import PACK_LIMIT
from .git_tree import Entry, Folder, TreeEditor, is_file, is_tree
from .mime import content_type
from .uploads import pieces

LISTING_BATCH = 512
USAGE_TREES = 1 << 16  # trees whose byte counts are kept
HISTORY_PATHS = 1024  # paths whose versions are kept
COMMIT_ATTEMPTS = 20
COMMIT_LOCK = "davserver-commit.lock"
ANONYMOUS = "anonymous"
STALE_LOCK_AGE = 60.0
GC_INTERVAL = 3600.0
GC_CHECK = 30.0  # seconds between counts of the loose objects
GC_COMMITS = 256  # commits after which they are counted at once

log = logging.getLogger("davserver.git")
# The ref files this process is writing right now (every GitStorage of it: two mounts may
# serve one branch): their lock files are live, whatever their age.
_writing: set[str] = set()
_writing_lock = threading.Lock()

_T = TypeVar("_T")
_HEX = re.compile(rb"[0-9a-f]{40}([0-9a-f]{24})?\Z")


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


def _etag(sha: ObjectID) -> str:
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
    Loose objects are packed (git_gc.py) every ``gc_interval`` seconds (0: never on a
    schedule) and whenever there are more than ``gc_loose_objects`` of them; then packs
    past ``gc_pack_limit`` are combined (git_repack.py).
    """

    reserved_names = RESERVED
    reserved_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        repo: str | os.PathLike[str],
        *,
        codec: PropsCodec,
        branch: str = "main",
        identity: str = "davserver <davserver@localhost>",
        state_dir: Path | None = None,
        stale_lock_age: float = STALE_LOCK_AGE,
        gc_interval: float = GC_INTERVAL,
        gc_loose_objects: int = LOOSE_THRESHOLD,
        gc_pack_limit: int = PACK_LIMIT,
    ) -> None:
        self.path = Path(repo)
        self.codec = codec
        self._listener: ChangeListener | None = None
        self._pool = WorkerPool(default_threads(), "git")
        self.stale_lock_age = stale_lock_age
        self.branch = branch
        self.ref = Ref(b"refs/heads/" + branch.encode())
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
        self._usage: dict[ObjectID, int] = {}  # bytes below a tree, by tree id
        self._history: OrderedDict[str, tuple[ObjectID | None, list[Version]]] = OrderedDict()
        self._history_lock = threading.Lock()
        self.gc_interval = gc_interval
        self.gc_loose_objects = gc_loose_objects
        self.gc_pack_limit = gc_pack_limit
        self._gc_task: asyncio.Task[None] | None = None
        self._gc_now = asyncio.Event()
        self._commits = 0
        self.packed: list[Packed] = []
        """What each packing run of this process did (newest last, the latest 100)."""
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
        if self._gc_task is None:
            self._gc_task = asyncio.get_running_loop().create_task(self._upkeep())

    async def _upkeep(self) -> None:
        """Pack loose objects when there are too many, or on schedule (see git_gc.py)."""
        last = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gc_now.wait(), GC_CHECK)
            self._gc_now.clear()
            try:
                # Packs removed by a packing run of any process are closed here at the
                # latest, even if no read misses: their descriptors and disk space.
                if self._reader is not None:
                    await self._run(self._reader.packs.refresh)
                due = self.gc_interval > 0 and time.monotonic() - last >= self.gc_interval
                if not due:
                    loose = await self._run(self._estimate_loose)
                    due = loose > self.gc_loose_objects
                if due:
                    await self.pack()
                    last = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk, a damaged object: logged, tried again later
                log.exception("%s: packing the loose objects failed", self.path)

    def _estimate_loose(self) -> int:
        repo = self._found_repo()
        return estimate_loose(os.fspath(repo.object_store.path)) if repo is not None else 0

    async def pack(self) -> Packed | None:
        """Pack the loose objects now, in a process of its own (git_gc.py); what it did
        (None: there is no repository yet, or another process is packing it)."""
        repo = self._found_repo()
        if repo is None:
            return None
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "davserver.backends.git_gc", repo.path, str(self.gc_pack_limit),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        spread(proc.pid)
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:  # the server stops: a pack cut short is harmless
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"packing failed: {err.decode(errors='replace').strip()}")
        found = json.loads(out or b"null")
        done = Packed(**found) if found is not None else None
        if self._reader is not None:  # take in the new packs, retire the replaced ones
            await self._run(self._reader.packs.refresh)
        if done is not None:
            if metrics.active is not None:
                metrics.active.git_repacks.inc()
            self.packed = [*self.packed[-99:], done]
            log.info(
                "%s: packed %d loose objects into %d packs in %.1f s (%d big ones left loose),"
                " combined %d packs into one, %d packs now",
                self.path, done.objects, done.packs, time.monotonic() - started, done.left_loose,
                done.combined, done.pack_count,
            )  # fmt: skip
        return done

    def listen(self, listener: ChangeListener) -> None:
        """Report committed changes (after each commit) to ``listener``."""
        self._listener = listener

    def feed(self) -> Feed | None:
        """Changes of folders from their tree ids (a moved tree means: list it again)."""
        return TreeFeed(self)

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
        # The repository last: _found_repo hands it out without the lock, and a reader
        # that gets it must find the object reader and the ref file set (else its first
        # read in a worker saw an empty tree).
        self._reader = ObjectReader(repo.object_store)
        self._ref_file = os.path.join(repo.commondir(), *self.ref.decode().split("/"))
        self._empty_tree = self._reader.empty_tree
        self._repo = repo

    def _ensure_repo(self) -> ObjectReader:
        with self._repo_lock:
            if self._reader is None:
                try:
                    repo = Repo(str(self.path))
                except NotGitRepository:
                    repo = self._create_repo()
                self._attach(repo)
            assert self._reader is not None
            return self._reader

    def _create_repo(self) -> Repo:
        """Make the bare repository where none is: built aside and renamed into place, so
        that another process making it at the same moment (the workers' first writes)
        never sees half of one; the loser opens the winner's."""
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        aside = parent / f".{self.path.name}.new-{secrets.token_hex(6)}"
        Repo.init_bare(str(aside), mkdir=True, default_branch=self.branch.encode()).close()
        try:
            os.rename(aside, self.path)  # onto nothing, or onto an empty folder
        except OSError as exc:
            shutil.rmtree(aside, ignore_errors=True)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        return Repo(str(self.path))

    async def close(self) -> None:
        """Save the index and close the repository."""

        def close() -> None:
            if self._index_file is not None and self._times.head is not None:
                with self._times.lock:
                    try:
                        self._times.save(self._index_file)
                    except OSError as exc:  # a cache: the next start works it out again
                        log.warning("%s: the times index was not saved: %s", self.path, exc)
            if self._reader is not None:
                self._reader.packs.close()
            if self._repo is not None:
                self._repo.close()

        if self._gc_task is not None:
            self._gc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None
        await self._run(close)
        self._pool.close()

    # -- helpers (run in the thread pool) -------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on the storage's worker threads; a full disk or quota is
        InsufficientStorage (507), whatever call found it (a blob, a tree, the ref)."""
        try:
            return await self._pool.submit(asyncio.get_running_loop(), fn, *args)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(str(exc)) from exc
            raise

    def _found_repo(self) -> Repo | None:
        """The repository, once it exists: it may have been created since this store
        opened (by another process serving it, or a first write elsewhere)."""
        if self._repo is not None:
            return self._repo
        with self._repo_lock:
            if self._repo is None:
                try:
                    self._attach(Repo(str(self.path)))
                except NotGitRepository:
                    return None
        return self._repo

    def _read_head(self) -> ObjectID | None:
        """The commit the branch points at now (None for an unborn branch)."""
        repo = self._found_repo()
        if repo is None:
            return None
        try:
            data = read_small(self._ref_file, 100).strip()
            if _HEX.match(data):
                return ObjectID(data)
        except (FileNotFoundError, NotADirectoryError):
            pass
        try:
            return repo.refs[self.ref]
        except KeyError:
            return None

    def _snapshot(self) -> tuple[ObjectID | None, ObjectID]:
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

    def _lookup(self, path: str) -> tuple[ObjectID | None, Entry | None]:
        head, tree = self._snapshot()
        if self._reader is None:
            return head, (stat.S_IFDIR, tree) if not path else None
        return head, lookup(self._reader, tree, segments(path))

    def _times_of(self, path: str, head: ObjectID | None) -> tuple[float, float]:
        known = self._times.get(path)
        if known is not None:
            return known
        when = float(self._reader.commit(head).commit_time) if head and self._reader else 0.0
        when = when or self._started
        return when, when

    def _resource(
        self, path: str, entry: Entry, head: ObjectID | None, props: DeadProps | None
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
            content_type=None if is_dir else content_type(path),
            dead_props=props,
        )

    def _load_props(self, sha: ObjectID) -> Mapping[str, bytes]:
        assert self._reader is not None
        return MappingProxyType(self.codec.decode(self._reader.raw(sha)[1]))

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

    def _at(self, head: ObjectID, path: str) -> Entry | None:
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

    def _member_props(self, path: str, entry: Entry, head: ObjectID | None) -> Mapping[str, bytes]:
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

    def _open_listing(self, path: str, dead_props: bool) -> tuple[ObjectID | None, _Listing]:
        head, entry = self._lookup(path)
        if entry is None or not stat.S_ISDIR(entry[0]):
            raise NotFound(path)  # a file has no members, as on a filesystem (ENOTDIR)
        members: list[tuple[str, Entry]] = []
        side: Mapping[bytes, Entry] = {}
        if self._reader is not None:
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

    def _batch(self, head: ObjectID | None, listing: _Listing, start: int) -> list[Resource]:
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

    async def usage(self, path: str) -> int:
        """The bytes of the files at or below ``path`` in the branch head: blob sizes
        summed over its tree, each tree's sum remembered by its id (trees never change,
        so a later call walks only the trees that are new)."""

        def total() -> int:
            _head, entry = self._lookup(path)
            if entry is None:
                raise NotFound(path)
            if self._reader is None:
                return 0
            if not stat.S_ISDIR(entry[0]):
                return self._reader.blob_size(entry[1])
            return self._tree_bytes(entry[1])

        return await self._run(total)

    def _tree_bytes(self, tree: ObjectID) -> int:
        known = self._usage.get(tree)
        if known is not None:
            return known
        assert self._reader is not None
        total = 0
        for raw, (mode, sha) in self._reader.tree(tree).items():
            if raw.decode(errors="replace") in RESERVED:
                continue
            if stat.S_ISDIR(mode):
                total += self._tree_bytes(sha)
            elif stat.S_ISREG(mode):
                total += self._reader.blob_size(sha)
        if len(self._usage) >= USAGE_TREES:
            self._usage.clear()
        self._usage[tree] = total
        return total

    # -- history --------------------------------------------------------------------------

    async def versions(self, path: str) -> list[Version]:
        """Every version of ``path`` on the branch's first-parent line, newest first
        (following renames). Kept per path: a later call walks only the commits made
        since (the whole line again after a force push)."""

        def walk() -> list[Version]:
            head, _ = self._snapshot()
            if self._reader is None:
                return []
            with self._history_lock:
                known = self._history.get(path)
            if known is not None and known[0] == head:
                return known[1]
            stop = known[0] if known is not None else None
            found, reached = versions(self._reader, head, path, stop)
            if reached and known is not None:
                found = [*found, *known[1]]
            with self._history_lock:
                self._history[path] = (head, found)
                self._history.move_to_end(path)
                while len(self._history) > HISTORY_PATHS:
                    self._history.popitem(last=False)
            return found

        return await self._run(walk)

    async def read_version(self, path: str, version: str, *, inline_limit: int) -> Body:
        """The file ``path`` as of commit ``version`` (a full hex id)."""
        return await self._run(self._read_version_sync, path, version, inline_limit)

    def _read_version_sync(self, path: str, version: str, inline_limit: int) -> Body:
        sha = ObjectID(version.encode())
        # The repository may have been created since this store opened (by another
        # worker's first write): found here as by every other read.
        if self._found_repo() is None or self._reader is None or not _HEX.match(sha):
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
            content_type=content_type(path),
        )
        return self._body(resource, entry, inline_limit)

    # -- writing --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def change(self, *, author: str, message: str) -> AsyncIterator[GitChange]:
        """One commit for the whole block, made when it ends without an exception (and
        only if it changed something); its changes go to the listener after it."""
        change = await self._run(self._begin, author)
        yield change
        if change.ops:
            async with self._commit_lock:
                done = await self._run(
                    self._commit, change, identity_of(author, self.identity), message
                )
            if done:
                self._commits += 1
                if self._commits % GC_COMMITS == 0:
                    self._gc_now.set()  # count the loose objects now
            if done and self._listener is not None:
                await self._listener(done)

    def _begin(self, author: str) -> GitChange:
        reader = self._ensure_repo()
        head, tree = self._snapshot()
        return GitChange(self, head, self._dav_tree(reader, tree if head else None), author)

    def _dav_tree(self, reader: ObjectReader, tree: ObjectID | None) -> DavTree:
        assert self._repo is not None
        store = self._repo.object_store
        return DavTree(TreeEditor(reader, tree), functools.partial(store_bytes, store), self.codec)

    def resource_at(self, tree: DavTree, path: str) -> Resource | None:
        """The resource at ``path`` in a tree being edited (what a precondition is checked
        against): a collection edited in this change has no ETag yet."""
        node = tree.editor.get(segments(path))
        if node is None or not (is_file(node) or is_tree(node)):
            return None
        head = self._times.head
        if isinstance(node, Folder):
            ctime, mtime = self._times_of(path, head)
            return Resource(path, True, 0, mtime, ctime, "", None)
        return self._resource(path, node, head, None)

    def _commit(self, change: GitChange, identity: bytes, message: str) -> list[Changed]:
        """Turn the block's edits into a commit on the branch (compare-and-swap, replaying
        the edits, and checking their preconditions again, on a head that moved); the
        changes it made, with their new ETags ([] when it changed nothing)."""
        assert self._repo is not None and self._reader is not None
        with self._committing():
            return self._commit_locked(change, identity, message)

    @contextlib.contextmanager
    def _committing(self) -> Iterator[None]:
        """Hold the repository's commit lock (shared by every process that opens it
        through davserver; a blocking wait, on a worker thread)."""
        assert self._repo is not None
        path = os.path.join(self._repo.commondir(), COMMIT_LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _commit_locked(self, change: GitChange, identity: bytes, message: str) -> list[Changed]:
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
            unchanged = root == (self._reader.commit(head).tree if head else self._empty_tree)
            if unchanged and not change.mtimes:
                return []
            commit = Commit()
            commit.tree = root
            commit.parents = [head] if head else []
            commit.author = commit.committer = identity
            commit.author_time = commit.commit_time = int(change.when)
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = message.encode() + b"\n" + mtime_trailers(change.mtimes)
            store.add_object(commit)
            new = ObjectID(commit.get_id(store.object_format))
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
                if metrics.active is not None:
                    metrics.active.git_commits.inc()
                with self._times.lock:
                    self._times.follow(self._reader, self._read_head())
                return [self._with_new_etag(root, ch) for ch in change.changes()]
            time.sleep(0.01 * attempt)
        if locked:
            raise BranchBusy(
                f"{self._repo_relative(locked)} exists: a git process is writing "
                f"{self.ref.decode()}, or one that crashed left it (it is removed once it is "
                f"{self.stale_lock_age:g} s old); the change was not recorded"
            )
        raise BranchBusy(f"{self.ref.decode()} kept moving; the change was not recorded")

    def _with_new_etag(self, root: ObjectID, change: Changed) -> Changed:
        """A change with the ETag its path (its new path, for a move) has in ``root``."""
        if change.kind == "deleted" or change.new_etag is not None:
            return change
        assert self._reader is not None
        entry = lookup(self._reader, root, segments(change.to or change.path))
        return replace(change, new_etag=_etag(entry[1])) if entry is not None else change

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


_Op = Callable[[DavTree], tuple[Any, list[Changed]]]
"""A recorded write: applied to a tree, its result and the changes it made there."""


class GitChange:
    """The writes of one ``change()`` block by ``author``, applied to a copy of the head
    tree as they come and recorded so that they can be replayed, preconditions and all,
    on a newer head."""

    def __init__(
        self, storage: GitStorage, base: ObjectID | None, tree: DavTree, author: str
    ) -> None:
        self._s = storage
        self.base = base
        self.tree = tree
        self.author = author
        self.ops: list[_Op] = []
        self._changes: list[list[Changed]] = []
        self.when = time.time()
        self.mtimes: dict[str, float] = {}
        """Modification times clients set, by path (the commit's trailers)."""

    def replay(self, head: ObjectID | None, tree: DavTree) -> None:
        """Apply every recorded operation again, on ``tree`` (the tree of ``head``): a
        precondition that no longer holds raises PreconditionFailed."""
        self.mtimes = {}
        self._changes = [op(tree)[1] for op in self.ops]
        self.base, self.tree = head, tree

    def changes(self) -> list[Changed]:
        """What the operations changed, as last applied."""
        return [change for changes in self._changes for change in changes]

    def _apply(self, op: _Op) -> Any:
        result, changes = op(self.tree)
        self.ops.append(op)
        self._changes.append(changes)
        self.when = time.time()
        return result

    async def _do(self, op: _Op) -> Any:
        return await self._s._run(self._apply, op)

    def _check(self, tree: DavTree, path: str, expect: Precondition | None) -> Resource | None:
        """The resource at ``path`` in ``tree``, once ``expect`` holds for it."""
        current = self._s.resource_at(tree, path)
        if expect is not None:
            expect(current)
        return current

    def _changed(
        self, path: str, kind: ChangeKind, is_collection: bool, old: Resource | None,
        new: Resource | None = None, to: str | None = None, note: object = None,
    ) -> Changed:  # fmt: skip
        return Changed(
            path, kind, is_collection, self.author, old.etag if old else None,
            new.etag if new else None, to, note, resource=new,
        )  # fmt: skip

    def _written(
        self, path: str, sha: ObjectID, size: int, created: bool, mtime: float | None = None
    ) -> Resource:
        """The resource a write of blob ``sha`` makes at ``path``."""
        known = None if created else self._s._times.get(path)
        ctime = known[0] if known else self.when
        if mtime is None:
            self.mtimes.pop(path, None)
        else:
            self.mtimes[path] = float(int(mtime))
        return Resource(
            path=path,
            is_collection=False,
            size=size,
            mtime=float(int(self.when if mtime is None else mtime)),
            ctime=min(ctime, float(int(self.when))),
            etag=_etag(sha),
            content_type=content_type(path),
        )

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
        """Store the body as a blob, then place it at ``path``."""
        segs = segments(path)

        def place(sha: ObjectID, size: int) -> _Op:
            def op(tree: DavTree) -> tuple[tuple[Resource, bool], list[Changed]]:
                old = self._check(tree, path, expect)
                created = tree.write(segs, sha)
                kind: ChangeKind = "created" if created else "modified"
                new = self._written(path, sha, size, created, mtime)
                return (new, created), [self._changed(path, kind, False, old, new, note=note)]

            return op

        if isinstance(body, bytes):
            if expected_size is not None and len(body) != expected_size:
                raise ValueError("body length differs from the announced length")
            done: tuple[Resource, bool] = await self._s._run(self._write_small, segs, body, place)
            return done
        await self._s._run(self.tree.check_writable, segs)
        sha, size = await self._stream(body, expected_size)
        written: tuple[Resource, bool] = await self._do(place(sha, size))
        return written

    def _write_small(
        self, segs: list[bytes], body: bytes, place: Callable[[ObjectID, int], _Op]
    ) -> tuple[Resource, bool]:
        """A body given whole, in one trip to the worker threads."""
        self.tree.check_writable(segs)
        assert self._s._repo is not None
        sha = store_bytes(self._s._repo.object_store, body)
        result: tuple[Resource, bool] = self._apply(place(sha, len(body)))
        return result

    async def _stream(
        self, body: AsyncIterator[bytes], expected_size: int | None
    ) -> tuple[ObjectID, int]:
        """Stream a body into a blob; return its id and size."""
        assert self._s._repo is not None
        store = self._s._repo.object_store
        run = self._s._run
        writer = await run(BlobWriter, store, expected_size)
        try:
            async for piece in pieces(body):
                await run(writer.add, piece)
        except BaseException:
            await run(writer.abort)
            raise
        return await run(writer.finish)

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
        """A ranged write (see :meth:`backends.base.FileChange.update`): a new blob made of
        the file's bytes before the range, the body, and its bytes after it, placed like
        any write (one commit). Should the file change before the commit (a push, another
        request), the update is refused (PreconditionFailed) rather than lose that change."""
        segs = segments(path)
        run = self._s._run
        base = await run(self._base_blob, segs)
        if base is None and not create:
            raise NotFound(path)
        base_size = base[1] if base is not None else 0
        start = base_size if offset is None else offset
        if start < 0:
            start += base_size
        if not 0 <= start <= base_size or (base is None and start):
            raise RangeNotSatisfiable(f"{path!r} is {base_size} bytes long", base_size)
        sha, size = await self._stream_range(base, start, body, expected_size)

        def op(tree: DavTree) -> tuple[tuple[Resource, bool], list[Changed]]:
            old = self._check(tree, path, expect)
            node = tree.editor.get(segs)
            now = node[1] if isinstance(node, tuple) and is_file(node) else None
            if now != (base[0] if base is not None else None):
                raise PreconditionFailed(f"{path!r} changed while the range was written")
            created = tree.write(segs, sha)
            kind: ChangeKind = "created" if created else "modified"
            new = self._written(path, sha, size, created)
            return (new, created), [self._changed(path, kind, False, old, new, note=note)]

        written: tuple[Resource, bool] = await self._do(op)
        return written

    def _base_blob(self, segs: list[bytes]) -> tuple[ObjectID, int] | None:
        """The blob at ``segs`` in this change's tree and its size (None: no file)."""
        self.tree.check_writable(segs)
        node = self.tree.editor.get(segs)
        if not (isinstance(node, tuple) and is_file(node)):
            return None
        assert self._s._reader is not None
        return node[1], self._s._reader.blob_size(node[1])

    async def _stream_range(
        self,
        base: tuple[ObjectID, int] | None,
        start: int,
        body: bytes | AsyncIterator[bytes],
        expected_size: int | None,
    ) -> tuple[ObjectID, int]:
        """A blob of ``base``'s bytes with ``body`` written from ``start``."""
        assert self._s._repo is not None and self._s._reader is not None
        store, reader, run = self._s._repo.object_store, self._s._reader, self._s._run
        base_size = base[1] if base is not None else 0
        known = None if expected_size is None else max(base_size, start + expected_size)
        writer = await run(BlobWriter, store, known)
        try:
            if base is not None:
                await run(copy_blob_range, reader, base[0], 0, start, writer.add)
            received = 0
            if isinstance(body, bytes):
                await run(writer.add, body)
                received = len(body)
            else:
                async for piece in pieces(body):
                    await run(writer.add, piece)
                    received += len(piece)
            if expected_size is not None and received != expected_size:
                raise ValueError("body length differs from the announced length")
            if base is not None and start + received < base_size:
                await run(copy_blob_range, reader, base[0], start + received, base_size, writer.add)
        except BaseException:
            await run(writer.abort)
            raise
        return await run(writer.finish)

    async def set_mtime(
        self, path: str, mtime: float, *, expect: Precondition | None = None
    ) -> Resource:
        """Record a modification time for ``path`` (a trailer of the commit, which the
        path-times index applies)."""

        def op(tree: DavTree) -> tuple[Resource, list[Changed]]:
            res = self._check(tree, path, expect)
            if res is None:
                raise NotFound(path)
            self.mtimes[path] = float(int(mtime))
            new = replace(res, mtime=float(int(mtime)))
            return new, [self._changed(path, "props", res.is_collection, res, new)]

        done: Resource = await self._do(op)
        return done

    async def mkcol(self, path: str) -> None:
        """Create an empty collection (a tree holding the placeholder)."""
        segs = segments(path)

        def op(tree: DavTree) -> tuple[None, list[Changed]]:
            tree.mkcol(segs)
            return None, [self._changed(path, "created", True, None)]

        await self._do(op)

    async def delete(self, path: str, *, expect: Precondition | None = None) -> list[DeleteFailure]:
        """Delete the resource and everything below it (never partly)."""
        segs = segments(path)

        def op(tree: DavTree) -> tuple[None, list[Changed]]:
            old = self._check(tree, path, expect)
            tree.delete(segs)
            assert old is not None  # delete raised NotFound otherwise
            return None, [self._changed(path, "deleted", old.is_collection, old)]

        await self._do(op)
        return []

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        recursive: bool,
        expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:
        """Copy ``src`` to ``dst``: a tree entry copied, whatever its size."""
        s, d = segments(src), segments(dst)

        def op(tree: DavTree) -> tuple[None, list[Changed]]:
            source = self._check(tree, src, expect)
            old = self._check(tree, dst, expect_dst)
            tree.copy(s, d, recursive=recursive)
            assert source is not None  # copy raised NotFound otherwise
            replaced = [self._changed(dst, "deleted", old.is_collection, old)] if old else []
            return None, [*replaced, self._changed(dst, "created", source.is_collection, None)]

        await self._do(op)

    async def move(
        self,
        src: str,
        dst: str,
        *,
        expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:
        """Move ``src`` to ``dst``."""
        s, d = segments(src), segments(dst)

        def op(tree: DavTree) -> tuple[None, list[Changed]]:
            source = self._check(tree, src, expect)
            old = self._check(tree, dst, expect_dst)
            tree.move(s, d)
            assert source is not None  # move raised NotFound otherwise
            replaced = [self._changed(dst, "deleted", old.is_collection, old)] if old else []
            moved = self._changed(src, "moved", source.is_collection, source, to=dst)
            return None, [*replaced, moved]

        await self._do(op)

    async def set_props(
        self,
        path: str,
        props: Mapping[str, bytes] | PropsUpdate,
        *,
        expect: Precondition | None = None,
        note: object = None,
    ) -> None:
        """Replace the dead properties of ``path`` (or update those there: on a replay,
        those of the new head)."""
        segs = segments(path)
        kept = None if callable(props) else dict(props)

        def op(tree: DavTree) -> tuple[None, list[Changed]]:
            res = self._check(tree, path, expect)
            is_collection = res.is_collection if res is not None else True
            if kept is not None:
                tree.set_props(segs, kept)
            else:
                assert callable(props)
                side = tree.editor.get(props_path(segs, is_collection))
                current = (
                    self._s._props_blob(side[1])
                    if isinstance(side, tuple) and is_file(side)
                    else {}
                )
                tree.set_props(segs, props(current))
            return None, [self._changed(path, "props", is_collection, res, note=note)]

        await self._do(op)
