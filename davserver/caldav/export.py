"""A calendar as one ``.ics`` file (``GET <calendar>/?export``): what a browser downloads
from the calendar's page, and what read-only calendar apps subscribe to."""

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


class CalendarExport:
    """The :class:`davserver.dav.exports.Export` of a CalDAV tree."""

    def describe(self, path: str) -> tuple[str, str, str] | None:
        """Calendars are exported; nothing else is."""
        where = place(path)
        if where.kind != "calendar" or where.calendar is None:
            return None
        name = where.calendar.rpartition("/")[2]
        return "calendar", f"{name}.ics", "text/calendar; charset=utf-8"

    async def chunks(self, ctx: Context, path: str) -> AsyncIterator[bytes]:
        """The calendar's objects merged, one object at a time."""
        yield header(path.rpartition("/")[2]).encode()
        zones: set[str] = set()
        async for batch in ctx.storage.children(path):
            for res in batch:
                if res.is_collection or not res.name.endswith(".ics"):
                    continue
                try:
                    body = await ctx.storage.read(res.path, inline_limit=READ_LIMIT)
                except NotFound:
                    continue
                data = body.data
                if data is None and body.file is not None:
                    data = await offload(body.file.read)
                    await offload(body.file.close)
                text = (data or b"").decode("utf-8", "replace")
                yield components(text, zones).encode()
        yield FOOTER.encode()
