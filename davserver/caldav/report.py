"""The calendar REPORTs: calendar-multiget (RFC 4791 §7.9) here, calendar-query
(query.py), free-busy-query (freebusy.py) and sync-collection (sync.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from lxml import etree

from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import all_plain, destination_raw_path

from .freebusy import free_busy_query
from .items import IndexedRenderer, ItemRenderer, missing
from .names import c, dav
from .query import query
from .sync import sync_collection

if TYPE_CHECKING:
    from davserver.dav.features import Report

BATCH = 256
"""hrefs of a multiget rendered per batch (a multiget of at most this many is answered
whole rather than streamed)."""


def _path_of(ctx: Context, link: str) -> str | None:
    try:
        raw = destination_raw_path(link, ctx.request.host)
        return ctx.storage_path(raw) if ctx.contains(raw) else None
    except DAVError:
        return None


def _targets(ctx: Context, links: list[str]) -> list[tuple[str, str | None, bool]]:
    """(href, storage path or None, whether the request may see it) of each href. The
    hrefs of a multiget name the items of one or a few collections: each folder is
    decoded, and its access decided, once; of each href only its last segment is checked
    (the rest take the whole way)."""
    storage = ctx.storage
    refused, prefixes = {".", "..", *storage.reserved_names}, storage.reserved_prefixes
    folders: dict[str, tuple[str | None, bool]] = {}
    out: list[tuple[str, str | None, bool]] = []
    split = [link.strip().rpartition("/") for link in links]
    # A name needs no decoding when it holds only the characters that need no encoding
    # (what clients send: the names the server gave); all are checked in one pass.
    every = all_plain([name for _, _, name in split])
    for folder, slash, name in split:
        link = folder + slash + name
        path: str | None = None
        if (
            name
            and (every or all_plain([name]))
            and name not in refused
            and not name.startswith(prefixes)
        ):
            found = folders.get(folder)
            if found is None:
                # A folder with a query or a fragment takes the whole way with its hrefs.
                plain = "?" not in folder and "#" not in folder
                base = _path_of(ctx, folder + "/") if plain else None
                found = folders[folder] = (base, base is not None and _enters(ctx, base))
            base, entered = found
            if base is not None:
                path = f"{base}/{name}" if base else name
                out.append((link, path, entered or ctx.may_enter(path)))
                continue
        path = _path_of(ctx, link)
        out.append((link, path, path is not None and ctx.may_enter(path)))
    return out


def _enters(ctx: Context, folder: str) -> bool:
    """Whether the request may see every member of ``folder``: it lies in a user's tree
    the request may see, or in a collection shared with it (False: ask of each)."""
    if ctx.owner(folder) is None:  # a shared place: its members may be someone's
        return False
    return ctx.may_enter(folder)


async def multiget(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """The named calendar objects with the properties asked for, in the order asked."""
    return await answer_multiget(ctx, root, ItemRenderer(ctx, root))


async def answer_multiget(
    ctx: Context, root: etree._Element, items: IndexedRenderer
) -> web.StreamResponse:
    """The items a multiget names (its ``D:href`` elements), rendered by ``items``, in
    the order asked (CardDAV's addressbook-multiget too)."""
    links = [el.text or "" for el in root.iterfind(dav("href"))]
    if not links:
        raise DAVError(400, f"{etree.QName(root).localname} names no href")
    # An href into another user's tree is answered 403, not looked at.
    targets = _targets(ctx, links)

    async def batch(part: list[tuple[str, str | None, bool]]) -> list[str]:
        paths = [p for _, p, good in part if good and p is not None]
        rendered = iter(await items.render(paths) if paths else [])
        return [
            next(rendered) if good else missing(link, 404 if p is None else 403)
            for link, p, good in part
        ]

    if len(targets) <= BATCH:
        # One batch (what clients send): the whole answer in one write, headers included.
        return multistatus.complete(await batch(targets))

    async def responses() -> AsyncIterator[str]:
        for i in range(0, len(targets), BATCH):
            yield "".join(await batch(targets[i : i + BATCH]))

    return await multistatus.stream(ctx.request, responses())


async def empty(ctx: Context, root: etree._Element) -> web.StreamResponse:
    """An empty 207, for reports clients send without checking support (InfCloud's
    expand-property), which must not fail."""
    return multistatus.complete("")


REPORTS: Mapping[str, Report] = {
    c("calendar-multiget"): multiget,
    c("calendar-query"): query,
    c("free-busy-query"): free_busy_query,
    dav("sync-collection"): sync_collection,
    dav("expand-property"): empty,
}
