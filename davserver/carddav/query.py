"""addressbook-query (RFC 6352 §8.6), answered from the index's vCard summaries where they
hold what the filter tests (names, emails, numbers, groups: what clients search), else
from the cards themselves, read and parsed once each. Matching runs off the event loop.
With a ``limit``, the first matches by name are answered, then a 507 for the rest
(§8.6.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from lxml import etree

from davserver import vcard
from davserver.caldav.store.items import CalendarItems
from davserver.caldav.store.layout import ADDRESSBOOKS, CalendarStore, place
from davserver.dav import multistatus
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href
from davserver.dav.xml import status_line
from davserver.runtime.threads import offload

from .filters import parse_query
from .items import CardRenderer
from .search import Search, simple
from .services import search, store

BATCH = 64
"""Cards read and tested, or rendered, per batch."""


def _by_summary(cards: list[tuple[str, vcard.Summary]], flt: vcard.Filter) -> list[str]:
    return [name for name, card in cards if vcard.matches(card, flt)]


def _by_card(found: list[tuple[str, bytes]], flt: vcard.Filter) -> list[str]:
    out = []
    for name, data in found:
        try:
            if vcard.matches(data, flt):
                out.append(name)
        except vcard.VCardError:  # changed meanwhile into something that is not a card
            continue
    return out


async def select(
    books: CalendarStore, book: str, items: CalendarItems, names: list[str], flt: vcard.Filter,
    searching: Search,
) -> list[str]:  # fmt: skip
    """The names among ``names`` whose cards meet ``flt``, in order. A stored file that is
    not a valid vCard meets no filter."""
    fast = simple(flt)
    if fast is not None:
        found = await searching.find(book, items, *fast)
        return [n for n in names if n in found]
    cards = [(n, card) for n in names if (item := items.get(n)) and (card := item.card)]
    answered = [(n, c) for n, c in cards if c.answers(flt)]
    matched = set(await offload(_by_summary, answered, flt)) if answered else set()
    rest = [n for n, c in cards if not c.answers(flt)]
    for i in range(0, len(rest), BATCH):
        batch = rest[i : i + BATCH]
        bodies = await asyncio.gather(*(books.item_body(book, n) for n in batch))
        read = [(n, b[1]) for n, b in zip(batch, bodies, strict=True) if b is not None]
        matched.update(await offload(_by_card, read, flt))
    return [n for n in names if n in matched]


async def query(ctx: Context, root: etree._Element) -> web.StreamResponse | None:
    """The cards of an address book (or the one card) that meet the filter; None outside
    the address books."""
    path = ctx.path
    where = place(path)
    if where.space != ADDRESSBOOKS:
        return None
    if where.kind not in ("addressbook", "item") or not where.book:
        raise DAVError(
            403, "addressbook-query works on address books", condition="supported-report"
        )
    asked = parse_query(root)
    renderer = CardRenderer(ctx, root)
    books = store(ctx)
    items = await books.refresh(where.book)
    renderer.known(where.book, items)
    if where.kind == "addressbook":
        base, names = path, sorted(items)
    else:
        name = where.name or ""
        base, names = path.rpartition("/")[0], [name] if name in items else []
    matched = await select(
        books, where.book, items, [n for n in names if n], asked.filter, search(ctx)
    )
    limit = asked.limit
    truncated = limit is not None and len(matched) > limit
    if limit is not None:
        matched = matched[:limit]
    book = where.book

    async def responses() -> AsyncIterator[str]:
        for i in range(0, len(matched), BATCH):
            yield "".join(await renderer.render_members(base, book, matched[i : i + BATCH]))
        if truncated:
            link = href(ctx.prefix, path, where.kind == "addressbook")
            yield (
                f"<D:response><D:href>{link}</D:href><D:status>{status_line(507)}</D:status>"
                "<D:error><D:number-of-matches-within-limits/></D:error></D:response>"
            )

    return await multistatus.stream(ctx.request, responses())
