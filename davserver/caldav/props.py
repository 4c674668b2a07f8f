"""The live properties of a CalDAV tree: discovery (RFC 5397, RFC 6764), principals,
calendar homes and calendar collections (RFC 4791 §5.2, §6.2), ctag and sync-token."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

from davserver.backends.base import Resource
from davserver.caldav.store.layout import CALENDARS, PRINCIPALS, place
from davserver.dav.paths import href
from davserver.dav.props import LIVE, LiveRenderer, PropRenderer
from davserver.dav.xml import escape

from .names import COMPONENTS, C, c, cs, dav
from .services import local_addresses

SUPPORTED_COMPONENTS = c("supported-calendar-component-set")
REPORTS = ("C:calendar-multiget", "C:calendar-query", "D:sync-collection")
PRINCIPAL_REPORTS = (
    "D:principal-property-search", "D:principal-search-property-set", "D:principal-match",
)  # fmt: skip
"""The reports of the mount root, the principals and each principal (principals.py)."""
PRINCIPAL_KINDS = ("root", "principals", "principal")
GROUP_KINDS = ("proxy", "group")
"""Group principals: a user's groups of delegates (delegation.py), a group's principal."""
EMAIL_ADDRESS_SET = cs("email-address-set")
# Worked out per request before rendering (they need the calendar index).
INDEXED = frozenset({cs("getctag"), dav("sync-token")})


def components_xml(components: tuple[str, ...], *, standalone: bool = False) -> str:
    """The ``supported-calendar-component-set`` element for these components
    (``standalone``: declaring its namespace, as a stored dead property must)."""
    inner = "".join(f'<C:comp name="{name}"/>' for name in components)
    declare = f' xmlns:C="{C}"' if standalone else ""
    return (
        f"<C:supported-calendar-component-set{declare}>{inner}</C:supported-calendar-component-set>"
    )


def supported_reports(names: tuple[str, ...]) -> str:
    """The ``supported-report-set`` element listing these reports."""
    inner = "".join(
        f"<D:supported-report><D:report><{name}/></D:report></D:supported-report>" for name in names
    )
    return f"<D:supported-report-set>{inner}</D:supported-report-set>"


def _href_el(tag: str, url: str) -> str:
    return f"<{tag}><D:href>{url}</D:href></{tag}>"


@functools.lru_cache(maxsize=4096)
def principal_values(
    prefix: str, user: str, addresses: Callable[[str], Sequence[str]] = local_addresses
) -> dict[str, str]:
    """The properties of ``user``'s principal that name the user: its URL, calendar home,
    calendar user addresses (``addresses``: the user's besides the principal URL) and
    e-mail addresses (the ``mailto:`` ones)."""
    principal = href(prefix, f"{PRINCIPALS}/{user}", True)
    home = href(prefix, f"{CALENDARS}/{user}", True)
    mine = addresses(user)
    links = "".join(f"<D:href>{escape(a)}</D:href>" for a in mine)
    mails = "".join(
        f"<CS:email-address>{escape(a[7:])}</CS:email-address>"
        for a in mine
        if a.lower().startswith("mailto:")
    )
    return {
        dav("principal-URL"): _href_el("D:principal-URL", principal),
        c("calendar-home-set"): _href_el("C:calendar-home-set", home),
        c("calendar-user-address-set"): (
            f"<C:calendar-user-address-set>{links}<D:href>{principal}</D:href>"
            "</C:calendar-user-address-set>"
        ),
        EMAIL_ADDRESS_SET: f"<CS:email-address-set>{mails}</CS:email-address-set>",
    }


def principal_table(
    prefix: str,
    user: str,
    *,
    by_resource: bool,
    addresses: Callable[[str], Sequence[str]] = local_addresses,
) -> dict[str, LiveRenderer]:
    """Renderers of :func:`principal_values`: of the principal a resource is when
    ``by_resource`` (``principals/<who>`` in this tree) and of ``user`` elsewhere (the
    requester: what discovery asks of any resource); the e-mail addresses of principals
    only."""
    own = principal_values(prefix, user, addresses)

    def renderer(name: str) -> LiveRenderer:
        def render(r: PropRenderer, res: Resource) -> str | None:
            where = place(res.path) if by_resource else None
            if where is not None and where.kind == "principal" and where.user:
                return principal_values(prefix, where.user, addresses)[name]
            if where is not None and where.kind in GROUP_KINDS:
                if name == dav("principal-URL"):
                    return _href_el("D:principal-URL", href(prefix, res.path, True))
                if name == c("calendar-home-set") and where.user:
                    # A group of delegates leads to its owner's home: DAVx5 looks for
                    # the homes of the groups a user is in.
                    return principal_values(prefix, where.user, addresses)[name]
                return None  # a group has no calendars or addresses of its own
            return None if name == EMAIL_ADDRESS_SET else own[name]

        return render

    return {name: renderer(name) for name in own}


def live_table(
    prefix: str,
    user: str,
    max_resource_size: int,
    addresses: Callable[[str], Sequence[str]] = local_addresses,
) -> dict[str, LiveRenderer]:
    """The live properties of a CalDAV mount at ``prefix``, for requests of ``user``
    (``addresses``: each user's calendar user addresses besides the principal URL)."""
    principal = href(prefix, f"{PRINCIPALS}/{user}", True)

    def resourcetype(r: PropRenderer, res: Resource) -> str | None:
        where = place(res.path)
        kind = where.kind
        if kind == "principal":
            return "<D:resourcetype><D:collection/><D:principal/></D:resourcetype>"
        if kind == "proxy":
            return f"<D:resourcetype><D:principal/><CS:{where.name}/></D:resourcetype>"
        if kind == "group":
            return "<D:resourcetype><D:principal/></D:resourcetype>"
        if kind == "calendar" and res.is_collection:
            return "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
        return LIVE[dav("resourcetype")](r, res)

    def displayname(r: PropRenderer, res: Resource) -> str | None:
        where = place(res.path)
        if where.kind == "principal" and where.user:
            return f"<D:displayname>{escape(where.user)}</D:displayname>"
        if where.kind == "proxy" and where.user:
            return f"<D:displayname>{escape(where.user)}: {where.name}</D:displayname>"
        if where.kind == "group" and where.name:
            return f"<D:displayname>{escape(where.name)}</D:displayname>"
        return LIVE[dav("displayname")](r, res)

    def owner(r: PropRenderer, res: Resource) -> str | None:
        who = place(res.path).user or user
        return _href_el("D:owner", href(prefix, f"{PRINCIPALS}/{who}", True))

    def on_calendars(value: str) -> LiveRenderer:
        def render(r: PropRenderer, res: Resource) -> str | None:
            return value if place(res.path).kind == "calendar" and res.is_collection else None

        return render

    def components(r: PropRenderer, res: Resource) -> str | None:
        if place(res.path).kind != "calendar" or not res.is_collection:
            return None
        stored = (res.dead_props or {}).get(SUPPORTED_COMPONENTS)
        return stored.decode() if stored is not None else components_xml(COMPONENTS)

    def reports(r: PropRenderer, res: Resource) -> str | None:
        if not res.is_collection:
            return None
        # sync-collection and calendar-query answer on calendars only (RFC 6578 §3).
        kind = place(res.path).kind
        if kind in PRINCIPAL_KINDS or kind in GROUP_KINDS:
            return supported_reports(REPORTS[:1] + PRINCIPAL_REPORTS)
        return supported_reports(REPORTS if kind == "calendar" else REPORTS[:1])

    table = dict(LIVE)
    table.update(
        {
            dav("resourcetype"): resourcetype,
            dav("displayname"): displayname,
            dav("owner"): owner,
            dav("current-user-principal"): lambda r, res: _href_el(
                "D:current-user-principal", principal
            ),
            dav("principal-collection-set"): lambda r, res: _href_el(
                "D:principal-collection-set", href(prefix, PRINCIPALS, True)
            ),
            dav("supported-report-set"): reports,
            SUPPORTED_COMPONENTS: components,
            c("supported-calendar-data"): on_calendars(
                '<C:supported-calendar-data><C:calendar-data content-type="text/calendar"'
                ' version="2.0"/></C:supported-calendar-data>'
            ),
            c("max-resource-size"): on_calendars(
                f"<C:max-resource-size>{max_resource_size}</C:max-resource-size>"
            ),
        }
    )
    table.update(principal_table(prefix, user, by_resource=True, addresses=addresses))
    return table


_CHANGE_NUMBER = re.compile(r"[0-9]{1,18}")


def sync_token(seq: int, epoch: str) -> str:
    """The sync-token URI naming a calendar's state after change ``seq`` of the index
    named ``epoch``."""
    return f"http://davserver.org/ns/sync/{epoch}-{seq}"


def parse_sync_token(token: str, epoch: str) -> int | None:
    """The change number of one of our sync tokens from the index named ``epoch``, or
    None for anything else."""
    prefix = f"http://davserver.org/ns/sync/{epoch}-"
    token = token.strip()
    tail = token[len(prefix) :]
    # ASCII digits only ("²" is a digit to str.isdigit), and no more than a change number
    # can have: a longer one is no token of ours (and would be slow to convert).
    if not token.startswith(prefix) or not _CHANGE_NUMBER.fullmatch(tail):
        return None
    return int(tail)


def indexed_values(path: str, seq: int, epoch: str) -> dict[tuple[str, str], str]:
    """The ctag and sync-token elements of the calendar at ``path`` after change ``seq``."""
    return {
        (path, cs("getctag")): f"<CS:getctag>{epoch}-{seq}</CS:getctag>",
        (path, dav("sync-token")): f"<D:sync-token>{sync_token(seq, epoch)}</D:sync-token>",
    }
