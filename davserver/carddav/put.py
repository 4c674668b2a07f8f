"""PUT of a vCard (RFC 6352 §6.3.2), validated before anything is stored, and stored byte
for byte as the client sent it."""

from __future__ import annotations

from aiohttp import web

from davserver import vcard
from davserver.caldav.store.layout import ADDRESSBOOKS, place
from davserver.dav.body import read_limited
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href
from davserver.dav.preconditions import expectation
from davserver.dav.props import http_date
from davserver.dav.write import put_target
from davserver.runtime.threads import offload

from .names import VCARD, cr
from .services import settings, store

MEDIA_TYPES = (VCARD, "text/x-vcard", "text/directory", "application/octet-stream", "")
"""The Content-Types a vCard may come with (old clients send text/x-vcard)."""


def refusal(exc: vcard.VCardError, status: int = 403) -> DAVError:
    """The answer to what the vCard layer refuses, with its CardDAV precondition."""
    condition = cr(exc.condition) if exc.condition else None
    return DAVError(status if condition else 400, str(exc), condition=condition)


def _read(data: bytes, max_size: int) -> tuple[vcard.VCard, vcard.Summary]:
    card = vcard.parse(data, max_size=max_size)
    return card, vcard.summarize(card)


async def validated(data: bytes, max_size: int) -> tuple[vcard.VCard, vcard.Summary]:
    """The vCard in ``data`` and its summary; 403 with the CardDAV precondition that
    fails."""
    try:
        return await offload(_read, data, max_size)
    except vcard.VCardError as exc:
        raise refusal(exc) from exc


async def check_uid(
    ctx: Context, book_path: str, name: str, uid: str, *, itself: str | None = None
) -> None:
    """RFC 6352 §6.3.2.1 no-uid-conflict (409, naming the card that has the UID): no other
    card of the address book at ``book_path`` may have ``uid``, nor may its card ``name``
    be replaced by one of another UID. ``itself``: a card of the book that may keep the
    UID (a MOVE's source). The caller holds the book's write lock."""
    book = place(book_path).book
    assert book is not None
    items = await store(ctx).refresh(book)
    replaced = items.get(name)
    if replaced is not None and replaced.uid is not None and replaced.uid != uid:
        raise DAVError(
            409, f"{name} holds UID {replaced.uid}, not {uid}",
            condition=cr("no-uid-conflict"),
            inner=f"<D:href>{href(ctx.prefix, f'{book_path}/{name}', False)}</D:href>",
        )  # fmt: skip
    for other in sorted(items.with_uid(uid) - {name, itself})[:1]:
        raise DAVError(
            409, f"UID {uid} is already used by {other}",
            condition=cr("no-uid-conflict"),
            inner=f"<D:href>{href(ctx.prefix, f'{book_path}/{other}', False)}</D:href>",
        )  # fmt: skip


async def put(ctx: Context) -> web.StreamResponse | None:
    """Store a vCard: 201/204 with its ETag, or the precondition that fails; None for a
    path outside the address books."""
    path, request = ctx.path, ctx.request
    where = place(path)
    if where.space != ADDRESSBOOKS:
        return None
    if where.kind != "item" or not where.book:
        raise DAVError(403, "vCards belong in an address book")
    books = store(ctx)
    book_path = path.rpartition("/")[0]
    book = await books.stat(book_path)
    if book is None or not book.is_collection:
        raise DAVError(409, "the address book does not exist")
    await put_target(ctx, path)
    media = request.headers.get("Content-Type", VCARD).split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise DAVError(403, f"{media} is not a vCard", condition=cr("supported-address-data"))
    limit = settings(ctx).max_resource_size
    length = request.content_length
    if length is not None and length > limit:
        raise DAVError(403, "too large", condition=cr("max-resource-size"))
    try:
        data = await read_limited(request, limit)
    except DAVError as exc:
        raise DAVError(403, "too large", condition=cr("max-resource-size")) from exc
    card, summary = await validated(data, limit)
    # The UID check and the write go together: two PUTs of one UID under two names must
    # not both pass the check before either is stored.
    async with books.writing(where.book):
        await check_uid(ctx, book_path, where.name or "", card.uid)
        async with books.change(author=ctx.author, message=f"PUT /{path}") as change:
            change.stored(book)
            res, created = await change.write(
                path, data, expect=expectation(ctx, path), note=summary
            )
    headers = {"ETag": res.etag, "Last-Modified": http_date(res.mtime)}
    return web.Response(status=201 if created else 204, headers=headers)
