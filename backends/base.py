"""The storage interface: what the protocol layer may ask of a backend.

Paths are mount-relative, already normalized and decoded by the protocol layer:
segments joined by ``/``, no leading or trailing slash, ``""`` for the mount root.
A backend never sees ``..``, NUL or an empty segment.

Dead properties are exchanged as a mapping from Clark names (``{ns}local``) to the
property element serialized as XML bytes, kept exactly as the client sent it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

DeadProps = Mapping[str, bytes]

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


class InsufficientStorage(StorageError):
    """The store is full."""

    status = 507


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


class Change(Protocol):
    """One atomic unit of writes (the git backend makes it one commit)."""

    async def write(
        self, path: str, body: bytes | AsyncIterator[bytes], expected_size: int | None = None
    ) -> tuple[Resource, bool]:
        """Store the bytes at ``path``; return the new resource and whether it was created.

        A body that is not ``expected_size`` bytes long (when given) is discarded with
        ``ValueError`` and the old content stays.
        """

    async def mkcol(self, path: str) -> None:
        """Create an empty collection."""

    async def delete(self, path: str) -> list[DeleteFailure]:
        """Delete the resource and, for a collection, all its members."""

    async def copy(self, src: str, dst: str, *, recursive: bool) -> None:
        """Copy ``src`` (and its members when recursive) with dead properties to ``dst``."""

    async def move(self, src: str, dst: str) -> None:
        """Move ``src`` with its members and dead properties to ``dst`` (which must not exist)."""

    async def set_props(self, path: str, props: DeadProps) -> None:
        """Replace all dead properties of ``path`` with ``props``."""


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

    async def close(self) -> None:
        """Release what the backend holds."""


@runtime_checkable
class History(Protocol):
    """What a backend that keeps every version (git) offers besides :class:`Storage`.

    Optional: the protocol layer checks ``isinstance(storage, History)``.
    """

    async def versions(self, path: str) -> list[Version]:
        """The versions of ``path``, newest first ([] when it never existed)."""

    async def read_version(self, path: str, version: str, *, inline_limit: int) -> Body:
        """The file ``path`` as of ``version``; NotFound when no file was there."""
