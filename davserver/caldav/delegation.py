"""Delegation: CalendarServer's calendar user proxies (caldav-proxy), which Apple's
clients set and read, and DAVx5 reads.

Each user's principal has two group principals, ``calendar-proxy-read/`` and
``calendar-proxy-write/``, whose ``DAV:group-member-set`` the user sets by PROPPATCH:
the principals (users, or groups) who may read, or read and write, the user's whole
calendar home. A delegation is a share of the calendar home (``calendars/<owner>``) kept
with the other shares (davserver/state/shares.py, either state engine), so that it takes
effect, and ends, like one: in the access check of the next request, in every worker.
A delegate also reads the owner's principal (:func:`implied`), where clients find the
home. A delegate's principal lists whom they act for (``CS:calendar-proxy-read-for``,
``CS:calendar-proxy-write-for``) and the groups they are in (``DAV:group-membership``).
"""

from __future__ import annotations

import logging

from aiohttp import web
from lxml import etree

from davserver.backends.base import Resource
from davserver.dav import multistatus
from davserver.dav.body import read_xml
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href
from davserver.dav.proppatch import parse_update
from davserver.dav.props import propstat
from davserver.dav.xml import empty_element
from davserver.state.shares import READ_ONLY, READ_WRITE, TO_GROUP, TO_USER, Share, Shares

from .names import cs, dav
from .services import SHARES
from .sharing import check_groups, sharee, sharee_href
from .store.layout import CALENDARS, PRINCIPALS, PROXY_GROUPS, place

log = logging.getLogger("davserver.sharing")

GROUP_MEMBER_SET = dav("group-member-set")
GROUP_MEMBERSHIP = dav("group-membership")
READ_FOR = cs("calendar-proxy-read-for")
WRITE_FOR = cs("calendar-proxy-write-for")
NAMES = frozenset({GROUP_MEMBER_SET, GROUP_MEMBERSHIP, READ_FOR, WRITE_FOR})
"""The delegation properties (worked out in ``annotate``)."""
LEVEL = dict(zip(PROXY_GROUPS, (READ_ONLY, READ_WRITE), strict=True))
"""The level each group of delegates gives its members."""
GROUP_OF = {level: name for name, level in LEVEL.items()}
MAX_MEMBERS = 100
"""The most delegates one group names (each is a row of the shares, read by every
worker): a longer set is refused (400); a group of users counts as one."""


def home(user: str) -> str:
    """The calendar home a user's delegates reach."""
    return f"{CALENDARS}/{user}"


def implied(path: str) -> tuple[str, ...]:
    """What a grant of ``path`` also lets its sharee read: a delegate, the owner's
    principal (where clients find the home and the owner's addresses)."""
    where = place(path)
    if where.kind == "home" and where.space == CALENDARS and where.user:
        return (f"{PRINCIPALS}/{where.user}",)
    return ()


def _hrefs(tag: str, links: list[str]) -> str:
    inner = "".join(f"<D:href>{link}</D:href>" for link in links)
    return f"<{tag}>{inner}</{tag}>"


def _members(shares: list[Share], level: str) -> list[Share]:
    return [s for s in shares if s.kind in (TO_USER, TO_GROUP) and s.level == level]


async def values(ctx: Context, shares: Shares, batch: list[Resource]) -> dict[tuple[str, str], str]:
    """The delegation properties of the principals and groups of delegates in ``batch``."""
    found: dict[tuple[str, str], str] = {}
    prefix = ctx.prefix
    for res in batch:
        where = place(res.path)
        if where.kind == "proxy" and where.user and where.name:
            of = await shares.of(prefix, home(where.user))
            links = [sharee_href(prefix, s.kind, s.sharee) for s in _members(of, LEVEL[where.name])]
            found[res.path, GROUP_MEMBER_SET] = _hrefs("D:group-member-set", links)
            found[res.path, GROUP_MEMBERSHIP] = "<D:group-membership/>"
        elif where.kind == "principal" and where.user:
            reached = await shares.reaching(prefix, where.user)
            owners: dict[str, list[str]] = {READ_ONLY: [], READ_WRITE: []}
            for path, level in sorted(reached.items()):
                shared = place(path)
                if shared.kind == "home" and shared.space == CALENDARS and shared.user:
                    owners[level].append(shared.user)
            groups = [
                href(prefix, f"{PRINCIPALS}/{owner}/{GROUP_OF[level]}", True)
                for level, names in owners.items()
                for owner in names
            ]
            found[res.path, GROUP_MEMBERSHIP] = _hrefs("D:group-membership", groups)
            for name, level in ((READ_FOR, READ_ONLY), (WRITE_FOR, READ_WRITE)):
                links = [href(prefix, f"{PRINCIPALS}/{o}", True) for o in owners[level]]
                found[res.path, name] = _hrefs(f"CS:{name.rpartition('}')[2]}", links)
    return found


async def proppatch(ctx: Context) -> web.StreamResponse | None:
    """PROPPATCH of a group of delegates by its owner: ``DAV:group-member-set`` set (the
    delegates, replacing those of the group) or removed (none); any other property is
    refused (403, and 424 for the rest: nothing changes). None: not a group of
    delegates."""
    where = place(ctx.path)
    shares = ctx.service(SHARES)
    if where.kind != "proxy" or shares is None or not where.user or not where.name:
        return None
    if where.user != ctx.principal:
        raise DAVError(403, "only its owner sets who their delegates are")
    ops = parse_update(await read_xml(ctx.request, ctx.settings.max_xml_size))
    names = list(dict.fromkeys(name for name, _ in ops))
    link = href(ctx.prefix, ctx.path, True)
    refused = [n for n in names if n != GROUP_MEMBER_SET]
    if refused:
        body = propstat(
            "".join(map(empty_element, refused)),
            403,
            "<D:error><D:cannot-modify-protected-property/></D:error>",
        )
        if GROUP_MEMBER_SET in names:
            body += propstat(empty_element(GROUP_MEMBER_SET), 424)
        return multistatus.complete(f"<D:response><D:href>{link}</D:href>{body}</D:response>")
    wanted: set[tuple[str, str]] = set()
    for _, value in ops:  # the last instruction decides
        wanted = set() if value is None else _named(ctx, value)
    if len(wanted) > MAX_MEMBERS:
        raise DAVError(400, f"{len(wanted)} delegates named; at most {MAX_MEMBERS}")
    if (TO_USER, ctx.principal) in wanted:
        raise DAVError(409, "a user is not their own delegate")
    await check_groups(shares, wanted)
    level = LEVEL[where.name]
    path = home(where.user)
    now = {(s.kind, s.sharee) for s in _members(await shares.of(ctx.prefix, path), level)}
    for kind, name in sorted(now - wanted):
        await shares.remove(ctx.prefix, path, kind, name)
    for kind, name in sorted(wanted - now):
        await shares.put(Share(ctx.prefix, path, kind, name, level))
    log.info("PROPPATCH %s: %r's %s are now %s", ctx.request.raw_path, where.user, where.name,
             sorted(wanted) or "none")  # fmt: skip
    body = propstat(empty_element(GROUP_MEMBER_SET), 200)
    return multistatus.complete(f"<D:response><D:href>{link}</D:href>{body}</D:response>")


def _named(ctx: Context, value: bytes) -> set[tuple[str, str]]:
    """The users and groups a ``DAV:group-member-set`` names (400 for an href that names
    neither)."""
    element = etree.fromstring(value)
    return {sharee(ctx, el.text) for el in element.iterfind(dav("href"))}
