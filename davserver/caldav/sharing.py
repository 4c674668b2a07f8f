"""Sharing calendars and address books through the protocol clients use: Apple
CalendarServer's ``POST`` of a ``CS:share`` body (calendarserver-sharing) and the
``D:share-resource`` body of draft-pot-webdav-resource-sharing, with the properties that
show a collection's shares (``CS:invite``, ``D:share-access``, ``CS:shared-url``,
``CS:allowed-sharing-modes``).

A share made here is kept by :class:`~davserver.state.shares.Shares` (the state folder)
and takes effect, like a fixed one, in the access check of the next request. Invitations
are accepted at once: the shared collection appears in the sharee's home
(``dav/propfind.shared_with_me``) under its owner's URL.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource
from davserver.dav.body import read_xml
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.identity import valid_user_name
from davserver.dav.paths import destination_raw_path, href
from davserver.dav.props import PropRenderer
from davserver.dav.xml import escape
from davserver.state.shares import READ_ONLY, READ_WRITE, TO_USER, Share, Shares

from .names import cs, dav
from .services import SHARES
from .store.layout import PRINCIPALS, place

log = logging.getLogger("davserver.sharing")

INVITE = cs("invite")
SHARED_URL = cs("shared-url")
ALLOWED_MODES = cs("allowed-sharing-modes")
SHARE_ACCESS = dav("share-access")
NAMES = frozenset({INVITE, SHARED_URL, ALLOWED_MODES, SHARE_ACCESS})
"""The sharing properties (worked out in ``annotate``; the privileges of a sharee come
from dav/acl.py, which knows the request's grants)."""
SHAREABLE = ("calendar", "addressbook")
_CS_LEVEL = {READ_ONLY: "<CS:read/>", READ_WRITE: "<CS:read-write/>"}
_DAV_LEVEL = {READ_ONLY: "<D:read/>", READ_WRITE: "<D:read-write/>"}


def _shareable(res: Resource) -> bool:
    return res.is_collection and place(res.path).kind in SHAREABLE


async def values(ctx: Context, shares: Shares, batch: list[Resource]) -> dict[tuple[str, str], str]:
    """The sharing properties of the calendars and address books in ``batch``, as the
    requester sees them (owner or sharee)."""
    found: dict[tuple[str, str], str] = {}
    for res in batch:
        if not _shareable(res):
            continue
        path = res.path
        of = await shares.of(ctx.prefix, path)
        level = ctx.grants.roots.get(path)
        if level is not None and ctx.owner(path) != ctx.principal:
            access = _DAV_LEVEL[level]
            link = href(ctx.prefix, path, True)
            found[path, SHARED_URL] = f"<CS:shared-url><D:href>{link}</D:href></CS:shared-url>"
        else:
            access = "<D:shared-owner/>" if of else "<D:not-shared/>"
            found[path, ALLOWED_MODES] = (
                "<CS:allowed-sharing-modes><CS:can-be-shared/></CS:allowed-sharing-modes>"
            )
        found[path, SHARE_ACCESS] = f"<D:share-access>{access}</D:share-access>"
        found[path, INVITE] = f"<CS:invite>{''.join(_invitee(ctx, s) for s in of)}</CS:invite>"
    return found


def _invitee(ctx: Context, share: Share) -> str:
    if share.kind == TO_USER:
        link = href(ctx.prefix, f"{PRINCIPALS}/{share.sharee}", True)
    else:
        link = f"urn:x-davserver:group:{escape(share.sharee)}"
    return (
        f"<CS:user><D:href>{link}</D:href><CS:common-name>{escape(share.sharee)}"
        f"</CS:common-name><CS:invite-accepted/><CS:access>{_CS_LEVEL[share.level]}"
        "</CS:access></CS:user>"
    )


def render_nothing(r: PropRenderer, res: Resource) -> str | None:
    """The sharing properties are worked out per request (``values``): none without."""
    return None


async def post(ctx: Context) -> web.StreamResponse | None:
    """``POST`` of a ``CS:share`` or ``D:share-resource`` body to a calendar or an address
    book by its owner: add, change or remove sharees (None: not a sharing request)."""
    shares = ctx.service(SHARES)
    content = ctx.request.content_type
    if shares is None or content not in ("application/xml", "text/xml"):
        return None
    where = place(ctx.path)
    if where.kind not in SHAREABLE or ctx.owner(ctx.path) != ctx.principal:
        raise DAVError(403, "only the owner of a calendar or an address book shares it")
    res = await ctx.storage.stat(ctx.path)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    if root is None:
        raise DAVError(400, "a sharing request needs a body")
    changes = _changes(ctx, root)
    if ctx.principal in changes:
        raise DAVError(403, "the owner cannot be a sharee")
    for user, level in changes.items():
        if level is None:
            await shares.remove(ctx.prefix, ctx.path, TO_USER, user)
        else:
            await shares.put(Share(ctx.prefix, ctx.path, TO_USER, user, level))
        log.info(
            "%s %s: %r %s %r",
            ctx.request.method,
            ctx.request.raw_path,
            ctx.principal,
            "unshared it with" if level is None else f"shared it ({level}) with",
            user,
        )
    return web.Response(status=200, text="")


def _changes(ctx: Context, root: etree._Element) -> dict[str, str | None]:
    """The sharees a body names, each with its new level (None: removed)."""
    found: dict[str, str | None] = {}
    if root.tag == cs("share"):
        for el in root:
            if el.tag == cs("set"):
                level = READ_WRITE if el.find(cs("read-write")) is not None else READ_ONLY
                found[_sharee(ctx, el)] = level
            elif el.tag == cs("remove"):
                found[_sharee(ctx, el)] = None
    elif root.tag == dav("share-resource"):
        for el in root.iterfind(dav("sharee")):
            access = el.find(dav("share-access"))
            if access is None or len(access) != 1:
                raise DAVError(400, "a sharee needs one share-access")
            tag = access[0].tag
            levels = {dav("read"): READ_ONLY, dav("read-write"): READ_WRITE, dav("no-access"): None}
            if tag not in levels:
                raise DAVError(400, f"share-access {etree.QName(access[0]).localname} is not known")
            found[_sharee(ctx, el)] = levels[tag]
    else:
        raise DAVError(400, f"{etree.QName(root).localname} is not a sharing request")
    if not found:
        raise DAVError(400, "the sharing request names no sharee")
    return found


def _sharee(ctx: Context, el: etree._Element) -> str:
    """The user an element's ``D:href`` names: their principal URL, ``mailto:user@...``
    (the calendar-user addresses this server gives), or the bare user name."""
    link = (el.findtext(dav("href")) or "").strip()
    user = None
    if link.lower().startswith("mailto:"):
        user = unquote(link[7:].partition("@")[0])
    elif "/" in link:
        try:
            raw = destination_raw_path(link, ctx.request.host)
            path = ctx.storage_path(raw) if ctx.contains(raw) else ""
        except DAVError:
            path = ""
        where = place(path)
        user = where.user if where.kind == "principal" else None
    elif link:
        user = link
    if not user or not valid_user_name(user):
        raise DAVError(400, f"{link!r} names no user of this server")
    return user
