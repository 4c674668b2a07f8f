"""WebDAV (RFC 4918) as features: its core (class 1), the methods every DAV tree answers
and the live properties every resource has, and locking (class 2). The handlers live in
the modules named after what they do (read, write, copymove, locking...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from davserver.backends.base import Resource, Storage
from davserver.state.checksums import ChecksumStore
from davserver.state.quota import QuotaCounters
from davserver.state.uploads import UploadStore

from . import (
    checksums,
    copymove,
    history,
    locking,
    partial,
    propfind,
    proppatch,
    quota,
    read,
    uploads,
    write,
)
from .context import Context, ServiceKey, Tree
from .features import BASE_PROPERTIES, Feature, Handler, LiveProperty

if TYPE_CHECKING:
    from .props import PropRenderer

if TYPE_CHECKING:
    from davserver.events import ChangeEvent, EventBus


class WebDav(Feature):
    """OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH."""

    compliance = ("1",)

    def methods(self) -> Mapping[str, Handler]:
        """The class 1 methods."""
        return {
            "OPTIONS": read.options,
            "GET": read.get,
            "HEAD": read.get,
            "PUT": write.put,
            "DELETE": write.delete,
            "MKCOL": write.mkcol,
            "COPY": copymove.copy_or_move,
            "MOVE": copymove.copy_or_move,
            "PROPFIND": propfind.propfind,
            "PROPPATCH": proppatch.proppatch,
        }

    def properties(self) -> Mapping[str, LiveProperty]:
        """RFC 4918's live properties, and RFC 4331's quota."""
        return BASE_PROPERTIES


class Locking(Feature):
    """WebDAV class 2: LOCK, UNLOCK, and locks dropped with what they cover."""

    compliance = ("2",)
    grants_locks = True

    def methods(self) -> Mapping[str, Handler]:
        """LOCK and UNLOCK."""
        return {"LOCK": locking.lock, "UNLOCK": locking.unlock}

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Drop the locks of what is deleted or moved away (a move leaves its locks
        behind, RFC 4918 §9.9.4; a replaced destination loses its own)."""
        locks, prefix = tree.locks, tree.prefix

        async def on_changes(events: Sequence[ChangeEvent]) -> None:
            for event in events:
                if event.kind in ("deleted", "moved"):
                    await locks.release_tree(prefix, event.path)

        bus.subscribe(prefix, on_changes)


class PartialUpdate(Feature):
    """Partial updates of files (dav/partial.py): SabreDAV's PATCH, advertised as
    ``sabredav-partialupdate``, and Apache's PUT with Content-Range."""

    compliance = ("sabredav-partialupdate",)

    def methods(self) -> Mapping[str, Handler]:
        """PATCH, and the PUT that takes a Content-Range (others go on to WebDav's)."""
        return {"PATCH": partial.patch, "PUT": partial.put_range}


class Checksums(Feature):
    """SHA1 and MD5 of files as ownCloud clients read them (``oc:checksums``), kept in
    ``store`` once computed; PUT checks an ``OC-Checksum`` (dav/checksums.py)."""

    def __init__(self, prefix: str, store: ChecksumStore) -> None:
        self._service = checksums.Checksums(store, prefix)

    def properties(self) -> Mapping[str, LiveProperty]:
        """``oc:checksums`` of files (worked out ahead by :meth:`annotate`)."""
        return {checksums.CHECKSUMS: LiveProperty(lambda r, res: None, protected=False)}

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """The tree's checksums, for PUT and PATCH."""
        return {checksums.SERVICE: self._service}

    async def annotate(self, ctx: Context, renderer: PropRenderer, batch: list[Resource]) -> None:
        """The checksums of a batch, when a PROPFIND asks for them."""
        await self._service.annotate(ctx.storage, renderer, batch)


class Quota(Feature):
    """Quotas of the mount and of each user's tree (RFC 4331, dav/quota.py): writes that
    would pass one are 507, the quota properties report the shared figures."""

    def __init__(
        self, prefix: str, storage: Storage, counters: QuotaCounters, limits: quota.QuotaLimits
    ) -> None:
        self._service = quota.Quotas(counters, prefix, limits, storage)

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """The tree's quotas, for the handlers that write."""
        return {quota.SERVICE: self._service}

    async def annotate(self, ctx: Context, renderer: PropRenderer, batch: list[Resource]) -> None:
        """The quota properties of a batch's collections, when a PROPFIND asks."""
        await self._service.annotate(renderer, batch)


class FileManager(Feature):
    """What the web file manager needs besides WebDAV (docs/browser.md): resumable
    uploads in pieces (``?upload=<id>`` on PATCH, HEAD and DELETE, dav/uploads.py), and
    restoring a file's version (``POST ?restore=<id>``, dav/history.py)."""

    def __init__(self, store: UploadStore) -> None:
        self._store = store

    def methods(self) -> Mapping[str, Handler]:
        """Each answers only requests that are its business (the query says)."""
        return {
            "PATCH": uploads.piece,
            "HEAD": uploads.status,
            "DELETE": uploads.cancel,
            "POST": history.restore,
        }

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """Where uploads wait for their last piece."""
        return {uploads.SERVICE: self._store}
