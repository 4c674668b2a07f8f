"""sync-collection (RFC 6578) on a calendar, from the index's change log; CardDAV answers
it on address books with the same code (:func:`answer`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from lxml import etree

from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href
from davserver.dav.xml import status_line

from .items import IndexedRenderer, ItemRenderer, missing
from .names import dav
from .props import parse_sync_token, sync_token
from .store.layout import place

BATCH = 256
"""Members rendered per batch."""
_NRESULTS = re.compile(r"[0-9]{1,18}")  # a limit's number of results


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """What a sync-collection body asks: changes since ``token`` ("" for everything), at
    most ``limit`` of them (None: all)."""

    token: str
    limit: int | None


def parse_limit(nresults: etree._Element | None) -> int | None:
    """The number of an ``nresults`` element (None without one); 400 for one that is
    not a number (CardDAV's addressbook-query has a limit of the same shape)."""
    if nresults is None:
        return None
    text = (nresults.text or "").strip()
    if not _NRESULTS.fullmatch(text):
        raise DAVError(400, f"nresults {text[:20]!r} is not a number of results")
    return int(text)


def parse_sync(root: etree._Element) -> SyncRequest:
    """Read a ``DAV:sync-collection`` body; 400 for a limit that is not a number or a
    sync-level other than 1 and infinite (RFC 6578 §6.3: a calendar has no collections
    below it, so both levels answer the same)."""
    level = root.findtext(dav("sync-level"))
    if level is not None and level.strip().lower() not in ("1", "infinite"):
        raise DAVError(400, f"sync-level {level.strip()[:20]!r} is neither 1 nor infinite")
    token = (root.findtext(dav("sync-token")) or "").strip()
    return SyncRequest(token, parse_limit(root.find(f"{dav('limit')}/{dav('nresults')}")))


async def sync_collection(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """What changed in a calendar since a sync token (everything, without one)."""
    where = place(ctx.path)
    if where.kind != "calendar" or not where.calendar:
        raise DAVError(403, "sync-collection works on calendars", condition="supported-report")
    return await answer(ctx, root, where.calendar, ItemRenderer(ctx, root))


async def answer(
    ctx: Context, root: etree._Element, collection: str, renderer: IndexedRenderer
) -> web.StreamResponse:
    """What changed in the collection at the request's path (inner path ``collection``)
    since the body's sync token, its members rendered by ``renderer``."""
    path = ctx.path
    asked = parse_sync(root)
    given, limit = asked.token, asked.limit
    store = renderer.store
    items = await store.refresh(collection)
    epoch = await store.index.epoch()
    since = 0
    if given:
        parsed = parse_sync_token(given, epoch)
        if parsed is None or parsed > await store.index.newest():
            raise DAVError(403, "unknown sync token", condition="valid-sync-token")
        since = parsed
    everything: list[str] = []
    if given or limit is not None:
        changes = await store.index.changes_since(collection, since)
        changes = changes if given else [ch for ch in changes if not ch[2]]
    else:  # everything there is: the index's names alone (no tuple made of each)
        changes, everything = [], list(items)
    truncated = limit is not None and len(changes) > limit
    if truncated:
        changes = changes[:limit]
        end = changes[-1][0] if changes else since
    else:
        end = max(since, await store.index.token(collection))
    renderer.known(collection, items)

    async def responses() -> AsyncIterator[str]:
        for i in range(0, len(everything), BATCH):
            some = everything[i : i + BATCH]
            yield "".join(await renderer.render_members(path, collection, some))
        for i in range(0, len(changes), BATCH):
            batch = changes[i : i + BATCH]
            present = [name for _, name, deleted in batch if not deleted]
            rendered = await renderer.render_members(path, collection, present)
            gone = [
                missing(href(ctx.prefix, f"{path}/{name}", False))
                for _, name, deleted in batch
                if deleted
            ]
            yield "".join(rendered) + "".join(gone)
        if truncated:
            link = href(ctx.prefix, path, True)
            yield (
                f"<D:response><D:href>{link}</D:href><D:status>{status_line(507)}</D:status>"
                "<D:error><D:number-of-matches-within-limits/></D:error></D:response>"
            )

    trailer = f"<D:sync-token>{sync_token(end, epoch)}</D:sync-token>"
    return await multistatus.stream(ctx.request, responses(), trailer)
