"""The live properties of scheduling (RFC 6638 §2, §9): the inbox and outbox URLs and
the calendar user type of principals, the inbox's and outbox's resource types and
privileges, the default calendar of invitations (on the inbox), the transparency of a
calendar for free-busy, and the schedule tag of a scheduling object."""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from davserver.backends.base import Resource
from davserver.caldav.names import c, dav
from davserver.caldav.store.layout import CALENDARS, place
from davserver.dav.paths import href
from davserver.dav.props import LiveRenderer, PropRenderer

from .deliver import href_path
from .names import (
    CALENDAR_TRANSP,
    DEFAULT_CALENDAR,
    DEFAULT_CALENDAR_URL,
    INBOX,
    OUTBOX,
    SCHEDULE_TAG,
    box_of,
)

_INBOX_PRIVILEGES = (
    "unbind", "write-properties", "C:schedule-deliver", "C:schedule-deliver-invite",
    "C:schedule-deliver-reply", "C:schedule-query-freebusy",
)  # fmt: skip
"""What the owner of an inbox may do there besides reading: remove the messages, set
its properties (the default calendar), and what RFC 6638 §6.1 grants on an inbox."""
_OUTBOX_PRIVILEGES = (
    "C:schedule-send", "C:schedule-send-invite", "C:schedule-send-reply",
    "C:schedule-send-freebusy",
)  # fmt: skip
"""What the owner of an outbox may do there besides reading: POST (§6.2)."""
PROTECTED = "{DAV:}cannot-modify-protected-property"
OPAQUE = "<C:schedule-calendar-transp><C:opaque/></C:schedule-calendar-transp>"


def box_privileges(path: str, granted: tuple[str, ...]) -> tuple[str, ...]:
    """The privileges on an inbox or outbox (``granted``, those of the access rules,
    elsewhere): nothing is PUT into either, and only who may write may take messages out
    of the inbox or send through the outbox; reading stays as granted."""
    box = box_of(place(path))
    if box is None or place(path).kind != "calendar":
        return granted
    read = tuple(p for p in granted if p.startswith("read"))
    if "write" not in granted:
        return read
    return read + (_INBOX_PRIVILEGES if box == INBOX else _OUTBOX_PRIVILEGES)


SETTABLE = frozenset({DEFAULT_CALENDAR_URL, CALENDAR_TRANSP})
"""The live properties a client may set (they are kept as dead properties)."""
STORED = frozenset({SCHEDULE_TAG})
"""The live properties the server keeps among the dead properties."""


def properties(prefix: str) -> dict[str, LiveRenderer]:
    """The live properties scheduling adds to the tree at ``prefix``."""

    def box_url(box: str, tag: str) -> LiveRenderer:
        def render(r: PropRenderer, res: Resource) -> str | None:
            where = place(res.path)
            if where.kind != "principal" or not where.user:
                return None
            link = href(prefix, f"{CALENDARS}/{where.user}/{box}", True)
            return f"<C:{tag}><D:href>{link}</D:href></C:{tag}>"

        return render

    def user_type(r: PropRenderer, res: Resource) -> str | None:
        if place(res.path).kind != "principal":
            return None
        return "<C:calendar-user-type>INDIVIDUAL</C:calendar-user-type>"

    def resourcetype(r: PropRenderer, res: Resource) -> str | None:
        where = place(res.path)
        box = box_of(where)
        if box is None or where.kind != "calendar":
            return None
        kind = "schedule-inbox" if box == INBOX else "schedule-outbox"
        return f"<D:resourcetype><D:collection/><C:{kind}/></D:resourcetype>"

    def default_calendar(r: PropRenderer, res: Resource) -> str | None:
        where = place(res.path)
        if box_of(where) != INBOX or where.kind != "calendar" or not where.user:
            return None
        stored = (res.dead_props or {}).get(DEFAULT_CALENDAR_URL)
        if stored is not None:
            return stored.decode()
        link = href(prefix, f"{CALENDARS}/{where.user}/{DEFAULT_CALENDAR}", True)
        name = "C:schedule-default-calendar-URL"
        return f"<{name}><D:href>{link}</D:href></{name}>"

    def transparency(r: PropRenderer, res: Resource) -> str | None:
        where = place(res.path)
        if where.kind != "calendar" or not res.is_collection or box_of(where) is not None:
            return None
        stored = (res.dead_props or {}).get(CALENDAR_TRANSP)
        return stored.decode() if stored is not None else OPAQUE

    def schedule_tag(r: PropRenderer, res: Resource) -> str | None:
        stored = (res.dead_props or {}).get(SCHEDULE_TAG)
        return stored.decode() if stored is not None and not res.is_collection else None

    return {
        c("schedule-inbox-URL"): box_url(INBOX, "schedule-inbox-URL"),
        c("schedule-outbox-URL"): box_url(OUTBOX, "schedule-outbox-URL"),
        c("calendar-user-type"): user_type,
        dav("resourcetype"): resourcetype,
        DEFAULT_CALENDAR_URL: default_calendar,
        CALENDAR_TRANSP: transparency,
        SCHEDULE_TAG: schedule_tag,
    }


def refused(prefix: str, path: str, props: Mapping[str, bytes]) -> dict[str, str]:
    """Of the values a PROPPATCH would store on ``path``, those scheduling refuses (RFC
    6638 §9.1, §9.2): name → the precondition that fails. Whether the default calendar
    exists is the caller's to check (:func:`default_target`)."""
    out: dict[str, str] = {}
    where = place(path)
    if box_of(where) == OUTBOX:
        return dict.fromkeys(props, PROTECTED)
    value = props.get(CALENDAR_TRANSP)
    if value is not None:
        kids = [el.tag for el in etree.fromstring(value) if isinstance(el.tag, str)]
        on_calendar = where.kind == "calendar" and box_of(where) is None
        if not on_calendar or kids not in ([c("opaque")], [c("transparent")]):
            out[CALENDAR_TRANSP] = PROTECTED
    value = props.get(DEFAULT_CALENDAR_URL)
    if value is not None and default_target(prefix, path, value) is None:
        out[DEFAULT_CALENDAR_URL] = c("valid-schedule-default-calendar-URL")
    return out


def default_target(prefix: str, path: str, value: bytes) -> str | None:
    """The calendar a ``schedule-default-calendar-URL`` value for the inbox at ``path``
    names, when it may name it (one of the inbox owner's calendars), else None."""
    where = place(path)
    links = etree.fromstring(value).findall("{DAV:}href")
    target = href_path(prefix, links[0].text or "") if len(links) == 1 else None
    to = place(target) if target is not None else None
    if box_of(where) != INBOX or to is None or target is None:
        return None
    if to.kind != "calendar" or to.user != where.user or box_of(to) is not None:
        return None
    return target
