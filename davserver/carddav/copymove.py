"""COPY and MOVE that involve the address books: the WebDAV methods, after RFC 6352's
preconditions (§6.3.2.1 for vCards: a valid card, a UID not used at the destination;
addressbook-collection-location-ok for address books). Nothing crosses between address
books and calendars."""

from __future__ import annotations

from aiohttp import web

from davserver.caldav.store.layout import ADDRESSBOOKS, Place, place
from davserver.dav import copymove
from davserver.dav.context import Context
from davserver.dav.errors import DAVError

from .mkcol import LOCATION_OK
from .names import cr
from .put import check_uid
from .services import store


async def copy_or_move(ctx: Context) -> web.StreamResponse | None:
    """Refuse what would put an address book or a vCard where it cannot be, or break the
    destination's rules; then copy or move as WebDAV does. None when neither end lies in
    the address books."""
    src = ctx.path
    s = place(src)
    try:
        dst = copymove.destination(ctx)
    except DAVError:
        if s.space == ADDRESSBOOKS:
            raise
        return None  # the next feature refuses it the same way
    d = place(dst)
    if ADDRESSBOOKS not in (s.space, d.space):
        return None
    res = await ctx.storage.stat(src)
    if res is not None and dst != src:
        if s.space != d.space:
            raise DAVError(403, "address books and calendars hold different things")
        if s.kind == "addressbook":
            if d.kind != "addressbook":
                raise DAVError(
                    403, "an address book can only go into a home", condition=LOCATION_OK
                )
        elif s.kind == "item" and not res.is_collection:
            if d.kind != "item":
                raise DAVError(403, "vCards belong in an address book")
            ctx.check_owner(dst, write=True)  # before the destination is looked at
            await _check_card(ctx, s, d, dst, moving=ctx.request.method == "MOVE")
        elif s.kind != d.kind:
            raise DAVError(403, f"a {s.kind} cannot be copied or moved to a {d.kind}")
    return await copymove.copy_or_move(ctx)


async def _check_card(ctx: Context, s: Place, d: Place, dst: str, *, moving: bool) -> None:
    """The source must be a valid vCard, and its UID free in the destination book (a
    moved card leaves its own place behind, a copied one keeps it)."""
    assert s.book is not None and d.book is not None and s.name is not None
    books = store(ctx)
    book_path = dst.rpartition("/")[0]
    book = await books.stat(book_path)
    if book is None or not book.is_collection:
        return  # the WebDAV method answers 409
    item = (await books.refresh(s.book)).get(s.name)
    if item is None or item.card is None:
        raise DAVError(403, "the source is not a vCard", condition=cr("valid-address-data"))
    itself = s.name if moving and d.book == s.book else None
    await check_uid(ctx, book_path, d.name or "", item.card.uid, itself=itself)
