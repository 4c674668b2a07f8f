"""A PROPFIND of Depth 1 on a calendar or an address book, answered from the index: the
members' responses are rendered from what the index knows of each item (ETag, size,
times, type), with no resource built per item. Clients that do not sync by report list a
collection's ETags this way, thousands of items at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator

from davserver.backends.base import Resource
from davserver.dav import multistatus
from davserver.dav.paths import href, member_hrefs
from davserver.dav.props import PropRenderer

from .names import dav
from .store.layout import CalendarStore, place

# The resourcetype of a member is the LIVE one (the features' own renderers change only
# principals' and collections').
_VOUCHED = frozenset({dav("resourcetype")})


async def indexed_members(
    store: CalendarStore, kind: str, renderer: PropRenderer, res: Resource
) -> AsyncIterator[str] | None:
    """The responses of the members of ``res`` when it is a collection of ``kind``
    (``calendar``, ``addressbook``), holds items only, and the request asks for
    properties the index gives; None otherwise (they are listed as usual)."""
    where = place(res.path)
    if where.kind != kind or not where.collection or not res.is_collection:
        return None
    render = renderer.file_renderer(_VOUCHED)
    if render is None:
        return None
    items = await store.refresh(where.collection)
    if items.folders:
        return None
    base = href(renderer.prefix, res.path, True)
    listed = list(items.items())

    async def responses() -> AsyncIterator[str]:
        slices = multistatus.Slices()
        for start in range(0, len(listed), _PER_PIECE):
            piece = listed[start : start + _PER_PIECE]
            links = member_hrefs(base, [name for name, _ in piece])
            yield "".join(render(link, item) for link, (_, item) in zip(links, piece, strict=True))
            await slices.tick()

    return responses()


_PER_PIECE = 256
"""Responses joined into one piece of the streamed answer."""
