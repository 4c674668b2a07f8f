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
from collections.abc import Iterable
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
from davserver.state.shares import (
    DECLINED,
    READ_ONLY,
    READ_WRITE,
    TO_GROUP,
    TO_USER,
    Share,
    Shares,
)

from .names import cs, dav
from .services import SHARES
from .store.layout import GROUPS, PRINCIPALS, place

log = logging.getLogger("davserver.sharing")

INVITE = cs("invite")
SHARED_URL = cs("shared-url")
ALLOWED_MODES = cs("allowed-sharing-modes")
SHARE_ACCESS = dav("share-access")
NAMES = frozenset({INVITE, SHARED_URL, ALLOWED_MODES, SHARE_ACCESS})
"""The sharing properties (worked out in ``annotate``; the privileges of a sharee come
from dav/acl.py, which knows the request's grants)."""
SHAREABLE = ("calendar", "addressbook")
GROUP_URN = "urn:x-davserver:group:"
"""How older answers named a group (still understood in a request)."""
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
        mine = ctx.owner(path) == ctx.principal
        if level is not None and not mine:
            access = _DAV_LEVEL[level]
            link = href(ctx.prefix, path, True)
            found[path, SHARED_URL] = f"<CS:shared-url><D:href>{link}</D:href></CS:shared-url>"
        else:
            # The owner's view; a delegate sees it too, but shares nothing on.
            access = "<D:shared-owner/>" if of else "<D:not-shared/>"
            if mine:
                found[path, ALLOWED_MODES] = (
                    "<CS:allowed-sharing-modes><CS:can-be-shared/></CS:allowed-sharing-modes>"
                )
        found[path, SHARE_ACCESS] = f"<D:share-access>{access}</D:share-access>"
        found[path, INVITE] = f"<CS:invite>{''.join(_invitee(ctx, s) for s in of)}</CS:invite>"
    return found


def sharee_href(prefix: str, kind: str, name: str) -> str:
    """The principal URL of a sharee: a user's, or a group's (``principals/.groups/``)."""
    if kind == TO_GROUP:
        return href(prefix, f"{PRINCIPALS}/{GROUPS}/{name}", True)
    return href(prefix, f"{PRINCIPALS}/{name}", True)


def _invitee(ctx: Context, share: Share) -> str:
    answer = "<CS:invite-declined/>" if share.kind == DECLINED else "<CS:invite-accepted/>"
    kind = TO_GROUP if share.kind == TO_GROUP else TO_USER
    return (
        f"<CS:user><D:href>{sharee_href(ctx.prefix, kind, share.sharee)}</D:href>"
        f"<CS:common-name>{escape(share.sharee)}</CS:common-name>{answer}"
        f"<CS:access>{_CS_LEVEL[share.level]}</CS:access></CS:user>"
    )


def render_nothing(r: PropRenderer, res: Resource) -> str | None:
    """The sharing properties are worked out per request (``values``): none without."""
    return None


async def post(ctx: Context) -> web.StreamResponse | None:
    """``POST`` of a ``CS:share`` or ``D:share-resource`` body to a calendar or an address
    book by its owner: add, change or remove sharees, users or groups (None: not a
    sharing request)."""
    shares = ctx.service(SHARES)
    content = ctx.request.content_type
    if shares is None or content not in ("application/xml", "text/xml"):
        return None
    where = place(ctx.path)
    if where.kind == "home" and ctx.owner(ctx.path) == ctx.principal:
        return await _invite_reply(ctx, shares)
    if where.kind not in SHAREABLE or ctx.owner(ctx.path) != ctx.principal:
        raise DAVError(403, "only the owner of a calendar or an address book shares it")
    res = await ctx.storage.stat(ctx.path)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    if root is None:
        raise DAVError(400, "a sharing request needs a body")
    changes = _changes(ctx, root)
    if (TO_USER, ctx.principal) in changes:
        raise DAVError(403, "the owner cannot be a sharee")
    await check_groups(shares, changes)
    for (kind, name), level in changes.items():
        if level is None:
            await shares.remove(ctx.prefix, ctx.path, kind, name)
        else:
            await shares.put(Share(ctx.prefix, ctx.path, kind, name, level))
        log.info(
            "%s %s: %r %s %s %r",
            ctx.request.method,
            ctx.request.raw_path,
            ctx.principal,
            "unshared it with" if level is None else f"shared it ({level}) with",
            kind,
            name,
        )
    return web.Response(status=200, text="")


async def decline(ctx: Context) -> web.StreamResponse | None:
    """A sharee's DELETE of a calendar or an address book shared with them: the share
    ends for them alone (204); the owner's collection and the other sharees' shares stay
    (None: not a shared calendar or address book)."""
    shares = ctx.service(SHARES)
    if shares is None or place(ctx.path).kind not in SHAREABLE:
        return None
    await _decline(ctx, shares, ctx.path)
    return web.Response(status=204)


async def _decline(ctx: Context, shares: Shares, path: str) -> None:
    assert ctx.principal is not None
    if not await shares.decline(ctx.prefix, path, ctx.principal):
        raise DAVError(403, f"{path!r} is not shared with {ctx.principal!r}")
    log.info("%s %s: %r turned the share of %r down", ctx.request.method,
             ctx.request.raw_path, ctx.principal, path)  # fmt: skip


async def _invite_reply(ctx: Context, shares: Shares) -> web.StreamResponse:
    """CalendarServer's ``CS:invite-reply`` POSTed to the sharee's home: invitations are
    accepted at once, so ``CS:invite-accepted`` changes nothing and ``CS:invite-declined``
    turns the share of ``CS:hosturl`` down (as a DELETE of it would)."""
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    if root is None or root.tag != cs("invite-reply"):
        raise DAVError(403, "only calendars and address books are shared (a home is delegated)")
    declined = root.find(cs("invite-declined")) is not None
    if not declined and root.find(cs("invite-accepted")) is None:
        raise DAVError(400, "an invite-reply must accept or decline")
    link = (root.findtext(f"{cs('hosturl')}/{dav('href')}") or "").strip()
    try:
        raw = destination_raw_path(link, ctx.request.host)
        path = ctx.storage_path(raw) if ctx.contains(raw) else None
    except DAVError:
        path = None
    if path is None or place(path).kind not in SHAREABLE or not ctx.shared_root(path):
        raise DAVError(403, f"{link!r} is not shared with {ctx.principal!r}")
    if declined:
        await _decline(ctx, shares, path)
    return web.Response(status=200, text="")


async def check_groups(shares: Shares, named: Iterable[tuple[str, str]]) -> None:
    """Refuse (400) a request naming a group that does not exist."""
    for kind, name in named:
        if kind == TO_GROUP and not await shares.group_exists(name):
            raise DAVError(400, f"there is no group {name!r}")


def _changes(ctx: Context, root: etree._Element) -> dict[tuple[str, str], str | None]:
    """The sharees a body names, each with its new level (None: removed)."""
    found: dict[tuple[str, str], str | None] = {}
    if root.tag == cs("share"):
        for el in root:
            if el.tag == cs("set"):
                level = READ_WRITE if el.find(cs("read-write")) is not None else READ_ONLY
                found[sharee(ctx, el.findtext(dav("href")))] = level
            elif el.tag == cs("remove"):
                found[sharee(ctx, el.findtext(dav("href")))] = None
    elif root.tag == dav("share-resource"):
        for el in root.iterfind(dav("sharee")):
            access = el.find(dav("share-access"))
            if access is None or len(access) != 1:
                raise DAVError(400, "a sharee needs one share-access")
            tag = access[0].tag
            levels = {dav("read"): READ_ONLY, dav("read-write"): READ_WRITE, dav("no-access"): None}
            if tag not in levels:
                raise DAVError(400, f"share-access {etree.QName(access[0]).localname} is not known")
            found[sharee(ctx, el.findtext(dav("href")))] = levels[tag]
    else:
        raise DAVError(400, f"{etree.QName(root).localname} is not a sharing request")
    if not found:
        raise DAVError(400, "the sharing request names no sharee")
    return found


def sharee(ctx: Context, text: str | None) -> tuple[str, str]:
    """The user or group (``TO_USER`` or ``TO_GROUP``, and the name) a ``D:href`` names:
    a principal URL (a user's, or a group's: ``principals/.groups/<group>/``),
    ``mailto:user@...`` (the calendar-user addresses this server gives), the bare user
    name, or ``urn:x-davserver:group:<group>``; 400 for anything else."""
    link = (text or "").strip()
    kind, name = TO_USER, None
    if link.lower().startswith("mailto:"):
        name = unquote(link[7:].partition("@")[0])
    elif link.startswith(GROUP_URN):
        kind, name = TO_GROUP, link[len(GROUP_URN) :]
    elif "/" in link:
        try:
            raw = destination_raw_path(link, ctx.request.host)
            path = ctx.storage_path(raw) if ctx.contains(raw) else ""
        except DAVError:
            path = ""
        where = place(path)
        if where.kind == "principal":
            name = where.user
        elif where.kind == "group":
            kind, name = TO_GROUP, where.name
    elif link:
        name = link
    # A group's name is checked against the groups (check_groups); a user's here.
    if not name or (kind == TO_USER and not valid_user_name(name)):
        raise DAVError(400, f"{link!r} names no user or group of this server")
    return kind, name
