"""The storage interface: what the protocol layer may ask of a backend.

Paths are mount-relative, already normalized and decoded by the protocol layer:
segments joined by ``/``, no leading or trailing slash, ``""`` for the mount root.
A backend never sees ``..``, NUL or an empty segment.

Dead properties are exchanged as a mapping from Clark names (``{ns}local``) to the
property element serialized as XML bytes, kept exactly as the client sent it; a backend
stores them through the :class:`PropsCodec` it is given and never looks inside.

Every write is checked and applied in one step: a :data:`Precondition` given to a
:class:`Change` operation is evaluated by the backend against the resource being
replaced, inside the write (under the filesystem backend's lock on the path, inside the
git backend's commit), so two racing conditional writes cannot both succeed. Every
committed change is reported to the storage's listener (:meth:`Storage.listen`) as
:class:`Changed` records, after it is durable.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol, runtime_checkable

DeadProps = Mapping[str, bytes]
PropsUpdate = Callable[[DeadProps], DeadProps]
"""A change of dead properties: the new ones, made of those there at the moment of the
write (so that writers of different properties of one resource lose none)."""

NAME_MAX = 255
"""The longest name (in bytes of UTF-8) of one path segment a backend stores."""


@dataclass(slots=True)
class Resource:
    """What a backend knows about one stored resource."""

    path: str
    is_collection: bool
    size: int
    mtime: float
    ctime: float
    etag: str
    content_type: str | None = None
    dead_props: DeadProps | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The last segment of the path (``""`` for the root)."""
        return self.path.rpartition("/")[2]


def virtual_collection(path: str, since: float) -> Resource:
    """A collection that no storage holds (the CalDAV layout's principals, the server
    root): empty, unchanged since ``since``."""
    return Resource(
        path=path, is_collection=True, size=0, mtime=since, ctime=since,
        etag=f'"v-{int(since)}"', dead_props={},
    )  # fmt: skip


def is_virtual(res: Resource) -> bool:
    """Whether ``res`` is a :func:`virtual_collection` (no storage holds it)."""
    return res.etag.startswith('"v-')


@dataclass(slots=True)
class Body:
    """The bytes of a resource to send: in memory when small, else an open file."""

    resource: Resource
    data: bytes | None = None
    file: BinaryIO | None = None


class StorageError(Exception):
    """Base of the errors a backend raises; each maps to one HTTP status."""

    status = 500


class NotFound(StorageError):
    """The resource does not exist."""

    status = 404


class Conflict(StorageError):
    """An intermediate collection is missing or is not a collection."""

    status = 409


class AlreadyExists(StorageError):
    """Something already exists at the path."""

    status = 405


class Forbidden(StorageError):
    """The path is reserved or leads outside the store."""

    status = 403


class NameTooLong(Forbidden):
    """A name is longer than the store can hold (255 bytes per segment, as on Linux
    filesystems). 403, as Apache httpd answers a path its filesystem refuses."""


class BadName(StorageError):
    """A name no write may create: it holds a control character (CR, LF, tab...), which
    breaks listings, headers and the tools that read the store."""

    status = 400


def check_name(path: str) -> None:
    """Refuse (:class:`BadName`) a path a write would give a name with a control
    character. Every backend calls it for each path it writes, whatever the method: one
    check for every way a name enters the store. Such names already there (made by other
    tools) can still be read and deleted."""
    if _CONTROL(path):
        raise BadName(f"{path!r} holds a control character")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search


class InsufficientStorage(StorageError):
    """The store is full."""

    status = 507


class PreconditionFailed(StorageError):
    """A :data:`Precondition` did not hold against the resource the write would replace."""

    status = 412


class RangeNotSatisfiable(StorageError):
    """A ranged write (:meth:`FileChange.update`) starts past the end of the file, or
    before its start; ``size`` is the file's size (for ``Content-Range: bytes */size``)."""

    status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class Unavailable(StorageError):
    """The store (or the state beside it) cannot be used right now; trying again later
    may work."""

    status = 503


Precondition = Callable[["Resource | None"], None]
"""A check of what a write replaces (None: nothing is there), run by the backend inside
the write; it raises :class:`PreconditionFailed` to stop the write. It must be quick and
pure: the filesystem backend runs it on a worker thread holding the path's lock, the git
backend again each time it replays a change on a newer head."""


class PropsCodec(Protocol):
    """How dead properties become the bytes of a property file, and back."""

    def encode(self, props: DeadProps) -> bytes:
        """The stored form of a set of properties."""

    def decode(self, data: bytes) -> dict[str, bytes]:
        """The properties in a stored form ({} when it is damaged)."""


ChangeKind = Literal["created", "modified", "deleted", "moved", "props"]


@dataclass(frozen=True, slots=True)
class Changed:
    """One committed change of a store, as its listener hears of it.

    ``moved`` names the old path in ``path`` and the new one in ``to``; a change that
    replaces what was at a destination (COPY or MOVE onto it) comes as ``deleted`` first.
    ``resource`` is the new resource where the backend knows it (a written file); ``note``
    is what the writer passed to the operation, handed on untouched (the calendar store
    passes the summary it computed), and ``outside`` marks a change made behind the
    server's back and found afterwards.
    """

    path: str
    kind: ChangeKind
    is_collection: bool
    author: str
    old_etag: str | None = None
    new_etag: str | None = None
    to: str | None = None
    note: object = None
    outside: bool = False
    resource: Resource | None = None


ChangeListener = Callable[[Sequence[Changed]], Awaitable[object]]
"""Where a storage reports its committed changes, in the order they were made (what it
returns is ignored)."""


class Feed(Protocol):
    """What a store can tell about changes made behind the server's back, for one folder
    at a time (the calendar store asks about each calendar it answers from)."""

    async def start(self, path: str) -> None:
        """Watch the folder at ``path`` from now on (called before it is listed in full)."""

    async def changes(self, path: str) -> set[str] | None:
        """The names of members changed since the folder was last asked about or
        started; None when the feed cannot tell (the caller then lists the folder). A
        feed may leave out what the store's own writes in this process changed: they
        reach the store's listener as changes anyway."""

    def close(self) -> None:
        """Stop watching."""


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    """One member that could not be deleted, for a 207 answer."""

    path: str
    status: int


@dataclass(frozen=True, slots=True)
class Version:
    """One recorded state of a resource, as a :class:`History` backend lists it."""

    id: str
    time: float
    author: str
    message: str
    etag: str
    size: int
    is_collection: bool
    path: str | None = None
    """Where the resource was in this version, when a rename moved it since (None: the
    path asked about)."""


class Change(Protocol):
    """One atomic unit of writes (the git backend makes it one commit).

    Each operation takes optional :data:`Precondition` checks, evaluated inside the write
    against what is there: ``expect`` on the resource at ``path`` (``src`` for COPY and
    MOVE), ``expect_dst`` on the destination of COPY and MOVE.
    """

    async def write(
        self,
        path: str,
        body: bytes | AsyncIterator[bytes],
        expected_size: int | None = None,
        *,
        expect: Precondition | None = None,
        note: object = None,
    ) -> tuple[Resource, bool]:
        """Store the bytes at ``path``; return the new resource and whether it was created.

        A body that is not ``expected_size`` bytes long (when given) is discarded with
        ``ValueError`` and the old content stays. ``note`` travels with the change to the
        listener.
        """

    async def mkcol(self, path: str) -> None:
        """Create an empty collection (AlreadyExists when something is there)."""

    async def delete(self, path: str, *, expect: Precondition | None = None) -> list[DeleteFailure]:
        """Delete the resource and, for a collection, all its members."""

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        recursive: bool,
        expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:
        """Copy ``src`` (and its members when recursive) with dead properties to ``dst``:
        a file replaces a file at ``dst``, anything else needs ``dst`` free."""

    async def move(
        self,
        src: str,
        dst: str,
        *,
        expect: Precondition | None = None,
        expect_dst: Precondition | None = None,
    ) -> None:
        """Move ``src`` with its members and dead properties to ``dst``: a file replaces a
        file at ``dst``, anything else needs ``dst`` free."""

    async def set_props(
        self,
        path: str,
        props: DeadProps | PropsUpdate,
        *,
        expect: Precondition | None = None,
        note: object = None,
    ) -> None:
        """Replace all dead properties of ``path`` with ``props``, or with what
        ``props(current)`` makes of those there at the moment of the write, under the same
        guard as ``expect`` (``note`` travels with the change to the listener)."""


class Storage(Protocol):
    """A tree of resources, read directly and written through :meth:`change`."""

    reserved_names: frozenset[str]
    """Names no request may use, in any segment (the backend's own bookkeeping)."""
    reserved_prefixes: tuple[str, ...]
    """Name prefixes no request may use (temporary files)."""

    async def open(self) -> None:
        """Prepare the store (create it when missing); called once before serving."""

    async def stat(self, path: str, *, dead_props: bool = False) -> Resource | None:
        """The resource at ``path``, or None when nothing is there."""

    def children(self, path: str, *, dead_props: bool = False) -> AsyncIterator[list[Resource]]:
        """The members of a collection, in batches, so huge folders stream."""

    async def read(self, path: str, *, inline_limit: int) -> Body:
        """Open a resource for sending; bodies up to ``inline_limit`` bytes come in memory."""

    async def quota(self, path: str) -> tuple[int, int] | None:
        """Bytes used and bytes available in the store, or None when unknown."""

    def change(self, *, author: str, message: str) -> AbstractAsyncContextManager[Change]:
        """Open an atomic unit of writes."""

    def listen(self, listener: ChangeListener) -> None:
        """Report every committed change to ``listener`` from now on (one listener; the
        mount that serves the store sets it, before :meth:`open`)."""

    def feed(self) -> Feed | None:
        """A feed of changes made behind the server's back, when the backend has one
        (called once the store is open)."""

    async def close(self) -> None:
        """Release what the backend holds."""


@runtime_checkable
class FileChange(Change, Protocol):
    """What the change of a file store (both backends; not the calendar store, whose
    objects are checked whole) offers besides :class:`Change`: modification times and
    ranged writes. Optional: the protocol layer checks ``isinstance(change, FileChange)``.
    """

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
        """:meth:`Change.write`, with the file's modification time set to ``mtime``
        (seconds since the epoch; None: the time of the write)."""

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
        """Write ``body`` into the file at ``path`` from byte ``offset`` on (None: at its
        end; negative: that many bytes before its end), keeping its other bytes; bytes
        past the end make it longer. As atomic as :meth:`Change.write`: a failure or a
        crash leaves the old bytes or the new. The new resource, and whether it was made.

        RangeNotSatisfiable when the offset lies past the end or before the start;
        NotFound when there is no file, unless ``create`` (a new file, from offset 0 or
        None); ValueError when the body is not ``expected_size`` bytes long;
        PreconditionFailed when the file changed while the body was read.
        """

    async def set_mtime(
        self, path: str, mtime: float, *, expect: Precondition | None = None
    ) -> Resource:
        """Set the modification time of the resource at ``path`` (what ``Last-Modified``
        and ``getlastmodified`` report); heard as a ``props`` change."""


@runtime_checkable
class Measured(Protocol):
    """A store that can tell how many bytes its files hold below a path (both
    backends). Optional, checked with ``isinstance``."""

    async def usage(self, path: str) -> int:
        """The bytes of every file at or below ``path`` (0 for an empty collection;
        NotFound when nothing is there). It may walk the tree: callers keep the figure."""


@runtime_checkable
class History(Protocol):
    """What a backend that keeps every version (git) offers besides :class:`Storage`.

    Optional: the protocol layer checks ``isinstance(storage, History)``.
    """

    async def versions(self, path: str) -> list[Version]:
        """The versions of ``path``, newest first ([] when it never existed)."""

    async def read_version(self, path: str, version: str, *, inline_limit: int) -> Body:
        """The file ``path`` as of ``version``; NotFound when no file was there."""
