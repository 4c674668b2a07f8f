"""A calendar as one ``.ics`` file and an address book as one ``.vcf`` file
(``GET <collection>/?export``): what a browser downloads from the collection's page, and
(for calendars) what read-only calendar apps subscribe to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from davserver.backends.base import NotFound
from davserver.ical.merge import FOOTER, components, header
from davserver.runtime.threads import offload

from .store.layout import place

if TYPE_CHECKING:
    from davserver.dav.context import Context

READ_LIMIT = 16 << 20


class CollectionExport:
    """The :class:`davserver.dav.exports.Export` of a CalDAV tree (its address books
    too, when it serves contacts)."""

    def describe(self, path: str) -> tuple[str, str, str] | None:
        """Calendars and address books are exported; nothing else is."""
        where = place(path)
        if where.collection is None:
            return None
        name = where.collection.rpartition("/")[2]
        if where.kind == "calendar":
            return "calendar", f"{name}.ics", "text/calendar; charset=utf-8"
        if where.kind == "addressbook":
            return "address book", f"{name}.vcf", "text/vcard; charset=utf-8"
        return None

    async def chunks(self, ctx: Context, path: str) -> AsyncIterator[bytes]:
        """A calendar's objects merged into one (each time zone once), or an address
        book's cards one after the other; one item at a time."""
        if place(path).kind == "addressbook":
            async for data in _items(ctx, path, ".vcf"):
                yield data if data.endswith(b"\n") else data + b"\r\n"
            return
        yield header(path.rpartition("/")[2]).encode()
        zones: set[str] = set()
        async for data in _items(ctx, path, ".ics"):
            yield components(data.decode("utf-8", "replace"), zones).encode()
        yield FOOTER.encode()


async def _items(ctx: Context, path: str, suffix: str) -> AsyncIterator[bytes]:
    """The bytes of each item named ``*suffix`` in the collection ``path``."""
    async for batch in ctx.storage.children(path):
        for res in batch:
            if res.is_collection or not res.name.endswith(suffix):
                continue
            try:
                body = await ctx.storage.read(res.path, inline_limit=READ_LIMIT)
            except NotFound:
                continue
            data = body.data
            if data is None and body.file is not None:
                data = await offload(body.file.read)
                await offload(body.file.close)
            yield data or b""
