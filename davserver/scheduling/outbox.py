"""POST to the outbox (RFC 6638 §5): a free-busy request answered for each attendee, and
the iTIP messages clients that schedule themselves send (REQUEST and CANCEL from the
organizer, REPLY from an attendee), delivered like implicit scheduling's.

Every check comes before any delivery: a refused POST (403 with the precondition: the
outbox not the user's ``originator-allowed``, not iCalendar ``supported-calendar-data``
or ``valid-calendar-data``, no METHOD or an unusable message ``valid-scheduling-message``,
an organizer or an attendee who is not the user ``organizer-allowed`` /
``attendee-allowed``, nobody to send to ``recipient-specified``) delivers nothing.
"""

from __future__ import annotations

import time

from aiohttp import web

from davserver.caldav.names import c
from davserver.caldav.services import calendars, settings
from davserver.caldav.store.layout import place
from davserver.dav.body import read_limited
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.xml import XML_CONTENT_TYPE, escape
from davserver.ical.itip import Posted, posted
from davserver.ical.meeting import InvalidMessage
from davserver.ical.timerange import TimeRange
from davserver.runtime.threads import offload

from .freebusy import busy_of, reply_calendar
from .names import OUTBOX, box_of
from .services import scheduler

REQUEST_STATUS = {
    "1.1": "2.0;Success",
    "1.2": "2.0;Success",
    "3.7": "3.7;Invalid calendar user",
    "3.8": "3.8;No authority",
    "5.1": "5.1;Service unavailable",
    "5.2": "5.2;Invalid calendar service",
    "5.3": "5.3;No scheduling support for user",
}


def _refuse(condition: str, reason: str) -> DAVError:
    return DAVError(403, reason, condition=c(condition))


async def post(ctx: Context) -> web.StreamResponse | None:
    """Answer a POST to the outbox with a ``schedule-response``."""
    where = place(ctx.path)
    if box_of(where) != OUTBOX or where.kind != "calendar":
        return None
    sched = scheduler(ctx)
    owner = where.user or ""
    if ctx.principal != owner:
        raise _refuse("originator-allowed", f"the outbox of {owner} is not {ctx.principal}'s")
    request = ctx.request
    media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media != "text/calendar":
        raise _refuse("supported-calendar-data", f"{media or 'no type'} is not text/calendar")
    data = await read_limited(request, settings(ctx).max_resource_size)
    try:
        message = await offload(posted, data)
    except InvalidMessage as exc:
        raise _refuse(exc.condition, exc.reason) from exc
    mine = sched.directory.addresses(owner)
    recipients = _recipients(message, mine)
    if message.component == "VFREEBUSY":
        responses = await _free_busy(ctx, message, recipients, owner)
    else:
        responses = []
        for who in recipients:
            status = await sched.postman.deliver(
                message.calendar, who, _sender(message, mine), owner
            )
            responses.append(_response(who, REQUEST_STATUS.get(status, f"{status};Failed")))
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<C:schedule-response xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"{''.join(responses)}</C:schedule-response>"
    )
    return web.Response(body=body.encode(), content_type=XML_CONTENT_TYPE, charset="utf-8")


def _recipients(message: Posted, mine: set[str]) -> list[str]:
    """Whom the message goes to; 403 when the user may not send it, or it names nobody."""
    if message.method == "REPLY":
        if not mine & set(message.attendees) or len(message.attendees) != 1:
            raise _refuse("attendee-allowed", "a REPLY carries the user's own participation")
        if message.organizer is None or message.organizer in mine:
            raise _refuse("recipient-specified", "a REPLY goes to an organizer elsewhere")
        return [message.organizer]
    if message.organizer not in mine:
        raise _refuse("organizer-allowed", f"the organizer {message.organizer} is not the user")
    found = [a for a in message.attendees if a not in mine or message.component == "VFREEBUSY"]
    if not found:
        raise _refuse("recipient-specified", "no ATTENDEE to send to")
    return found


def _sender(message: Posted, mine: set[str]) -> str:
    if message.method == "REPLY":
        return next(a for a in message.attendees if a in mine)
    return message.organizer or ""


def _response(recipient: str, status: str, data: bytes | None = None) -> str:
    calendar = (
        f"<C:calendar-data>{escape(data.decode())}</C:calendar-data>" if data is not None else ""
    )
    return (
        f"<C:response><C:recipient><D:href>{escape(recipient)}</D:href></C:recipient>"
        f"<C:request-status>{escape(status)}</C:request-status>{calendar}</C:response>"
    )


async def _free_busy(ctx: Context, message: Posted, recipients: list[str], owner: str) -> list[str]:
    """Each attendee's busy time (users here), or why there is none."""
    sched = scheduler(ctx)
    assert message.start is not None and message.end is not None
    rng = TimeRange(message.start, message.end)
    store = calendars(ctx)
    out = []
    for who in recipients:
        user = sched.directory.user_of(who)
        if user is None:
            out.append(_response(who, REQUEST_STATUS["3.7"]))
            continue
        addresses = frozenset(sched.directory.addresses(user))
        busy = await busy_of(store, ctx.prefix, user, addresses, rng)
        text = await offload(
            reply_calendar, busy, rng, message.uid, message.organizer or "", who, time.time()
        )
        out.append(_response(who, "2.0;Success", text))
    return out
