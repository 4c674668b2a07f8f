"""Implicit scheduling (RFC 6638 §3.2), driven by the tree's change events.

Whatever writes a calendar object (a PUT, a COPY or MOVE, a DELETE of it, its calendar or
its home), the event says so, and :meth:`Scheduler.on_changes` compares the new version
with the one it recorded (records.py):

- the organizer's copy: a REQUEST to each attendee when the meeting changed in a way
  they must hear of (or they are new, or SCHEDULE-FORCE-SEND asks), a CANCEL to those
  removed, and to everyone when it is deleted; SCHEDULE-STATUS set on each ATTENDEE
  and a new schedule tag;
- an attendee's copy: a REPLY to the organizer for each instance whose participation
  changed (DECLINED when the copy is deleted, unless ``Schedule-Reply: F``), and
  SCHEDULE-STATUS set on the ORGANIZER.

Only the process that made the change hears of it (a local subscriber), so each message
is delivered once however many workers serve the tree. Scheduling's own writes (by
:data:`SCHEDULER`) and changes found made behind the server's back are not acted upon.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import icalendar

from davserver.backends.base import StorageError
from davserver.caldav.store.layout import CALENDARS, CalendarStore, Place, place
from davserver.ical import zones
from davserver.ical.itip import (
    cancel,
    changed_partstats,
    keep_partstats,
    now_utc,
    reply,
    request,
    rescheduled,
    set_organizer_status,
    set_schedule_status,
    significant,
)
from davserver.ical.meeting import InvalidMessage, Meeting, meeting, role
from davserver.ical.summary import Summary
from davserver.runtime.threads import offload

from .deliver import Postman, finished, new_tag
from .directory import Directory
from .names import SCHEDULER, box_of
from .records import Record, Records

if TYPE_CHECKING:
    from davserver.events import ChangeEvent

log = logging.getLogger("davserver.scheduling")

# A calendar object that may be a scheduling object (the parse decides); most are not,
# and are left alone after this look at their bytes.
_MAYBE = re.compile(rb"(?im)^organizer[;:]")
MAX_RECENT = 1024


def parse(data: bytes) -> tuple[icalendar.Calendar, Meeting | None]:
    """An object and the meeting it holds (CPU work: off the event loop)."""
    calendar = zones.parse(data)
    return calendar, meeting(calendar)


class Scheduler:
    """Implicit scheduling for one tree, and what its request handlers share with it."""

    def __init__(
        self, store: CalendarStore, records: Records, directory: Directory, postman: Postman
    ) -> None:
        self.store = store
        self.records = records
        self.directory = directory
        self.postman = postman
        self.recent: dict[str, tuple[str, str | None]] = {}
        """Of the copies scheduling amended for a request of this process: path → (its
        ETag now, its schedule tag); the PUT's answer takes them (handlers.py)."""
        self.quiet: set[str] = set()
        """Paths being deleted with ``Schedule-Reply: F``: no reply for them."""

    # -- events ------------------------------------------------------------------------

    async def on_changes(self, events: Sequence[ChangeEvent]) -> None:
        """Act on the tree's changes (those made by this process)."""
        # A MOVE onto a resource comes as its deletion, then the move, in one batch.
        replaced = {e.to: e.path for e in events if e.kind == "moved" and e.to is not None}
        for event in events:
            if event.outside or event.author == SCHEDULER:
                continue
            where = place(event.path)
            if where.space != CALENDARS or where.user is None or box_of(where) is not None:
                continue
            try:
                await self._one(event, where, replaced.get(event.path))
            except (InvalidMessage, ValueError, StorageError) as exc:
                log.warning("scheduling of %s %s skipped: %s", event.kind, event.path, exc)
            except Exception:
                # The change is stored: its scheduling failing must not fail the request
                # that made it, nor keep the next events from theirs.
                log.exception("scheduling of %s %s failed", event.kind, event.path)

    async def _one(self, event: ChangeEvent, where: Place, moved_from: str | None) -> None:
        if event.kind in ("created", "modified") and where.kind == "item":
            await self._written(event, where)
        elif event.kind == "deleted":
            if where.kind == "item":
                found = await self.records.get(event.path)
                gone = [found] if found is not None else []
            else:
                gone = await self.records.under(event.path)
            coming = await self.records.get(moved_from) if moved_from is not None else None
            for record in gone:
                if coming is not None and (coming.user, coming.uid, coming.role) == (
                    record.user, record.uid, record.role,
                ):  # fmt: skip
                    continue  # replaced by a copy of the same meeting: nothing ends
                await self._removed(record)
            await self.records.delete([r.path for r in gone])
        elif event.kind == "moved" and event.to is not None:
            if place(event.to).user == where.user:
                await self.records.move(event.path, event.to)
            else:  # into another user's calendars (an owner-only tree never allows it)
                gone = await self.records.under(event.path)
                found = await self.records.get(event.path)
                await self.records.delete([r.path for r in [*gone, *([found] if found else [])]])

    async def _written(self, event: ChangeEvent, where: Place) -> None:
        assert where.calendar is not None and where.name is not None and where.user is not None
        data = self.store.underway(event.note)
        etag = event.new_etag
        if data is None or etag is None:
            found = await self.store.item_body(where.calendar, where.name)
            if found is None or (etag is not None and found[0].etag != etag):
                return  # changed again since: that change has an event of its own
            etag, data = found[0].etag, found[1]
        maybe = _MAYBE.search(data) is not None
        if event.kind == "created" and not maybe:
            return  # most are plain events
        old = await self.records.get(event.path)
        if old is None and not maybe:
            return
        calendar, now = await offload(parse, data)
        user = where.user
        mine = self.directory.addresses(user)
        kind = role(now, mine) if now is not None else None
        if old is not None and (kind is None or kind != old.role):
            await self._removed(old)  # no longer a meeting of theirs, or not in that role
            await self.records.delete([old.path])
            old = None
        if kind is None or now is None:
            return
        if kind == "organizer":
            await self._organizer_wrote(event.path, user, calendar, now, old, etag, data)
        else:
            await self._attendee_wrote(event.path, user, calendar, now, old, etag, data)

    # -- the organizer -------------------------------------------------------------------

    async def _organizer_wrote(
        self, path: str, user: str, calendar: icalendar.Calendar, now: Meeting,
        old: Record | None, etag: str, written: bytes,
    ) -> None:  # fmt: skip
        mine = self.directory.addresses(user)
        before_cal, before = await self._parsed(old)
        kept, requests, cancels = await offload(
            _organizer_plan, calendar, now, before_cal, before, mine, now_utc()
        )
        # Each recipient's delivery is theirs alone (their inbox, their copy, their lock):
        # they go together.
        sent = {**requests, **cancels}
        outcomes = await asyncio.gather(
            *(self.postman.deliver(m, who, now.organizer, user) for who, m in sent.items())
        )
        statuses = {w: s for w, s in zip(sent, outcomes, strict=True) if w in requests}

        def fix(c: icalendar.Calendar) -> bool:
            return set_schedule_status(c, statuses)

        made = await offload(_made_if, fix, calendar, kept)
        tag = new_tag()
        res = await self.postman.amend(
            path, user, now.uid, "organizer", etag, written, made, fix, tag,
            f"schedule: {now.uid} of {user} sent to {len(statuses)}",
        )  # fmt: skip
        self._remember(path, res.etag if res is not None else etag, tag)

    # -- an attendee -----------------------------------------------------------------------

    async def _attendee_wrote(
        self, path: str, user: str, calendar: icalendar.Calendar, now: Meeting,
        old: Record | None, etag: str, written: bytes,
    ) -> None:  # fmt: skip
        mine = self.directory.addresses(user)
        me = sorted(now.everyone() & mine)[0]
        _, before = await self._parsed(old)
        status = ""
        if now.organizer_agent == "SERVER" and now.status != "CANCELLED":
            rids = changed_partstats(before, now, me)
            message = await offload(reply, calendar, me, now_utc(), rids) if rids else None
            if message is not None:
                status = await self.postman.deliver(message, now.organizer, me, user)

        def fix(c: icalendar.Calendar) -> bool:
            return bool(status) and set_organizer_status(c, status)

        made = await offload(_made_if, fix, calendar, False)
        res = await self.postman.amend(
            path, user, now.uid, "attendee", etag, written, made, fix, None,
            f"schedule: reply of {user}",
        )  # fmt: skip
        self._remember(path, res.etag if res is not None else etag, None)

    # -- deleted (or no longer a meeting) ---------------------------------------------------

    async def _removed(self, record: Record) -> None:
        """A copy is gone: the organizer's cancels the meeting for everyone, an
        attendee's declines it."""
        calendar, found = await self._parsed(record)
        if calendar is None or found is None:
            return
        mine = self.directory.addresses(record.user)
        stamp = now_utc()
        if record.role == "organizer":
            for who in sorted(found.everyone() - mine):
                if _served(found, who):
                    message = await offload(cancel, calendar, who, stamp)
                    if message is not None:
                        await self.postman.deliver(message, who, found.organizer, record.user)
            return
        if record.path in self.quiet or found.status == "CANCELLED":
            return
        if found.organizer_agent != "SERVER":
            return
        me = sorted(found.everyone() & mine)
        if not me:
            return
        states = found.partstats(me[0])
        if all(s == "DECLINED" for s in states.values()):
            return
        message = await offload(reply, calendar, me[0], stamp, list(states), "DECLINED")
        if message is not None:
            await self.postman.deliver(message, found.organizer, me[0], record.user)

    # -- helpers ------------------------------------------------------------------------------

    async def _parsed(
        self, record: Record | None
    ) -> tuple[icalendar.Calendar | None, Meeting | None]:
        if record is None or not record.data:
            return None, None
        try:
            return await offload(parse, record.data)
        except (ValueError, InvalidMessage):
            return None, None

    async def _stored(self, path: str) -> bytes | None:
        where = place(path)
        if where.calendar is None or where.name is None:
            return None
        found = await self.store.item_body(where.calendar, where.name)
        return found[1] if found is not None else None

    def _remember(self, path: str, etag: str, tag: str | None) -> None:
        if len(self.recent) >= MAX_RECENT:
            self.recent.clear()  # answers that never came for them (a failed request)
        self.recent[path] = (etag, tag)


def _organizer_plan(
    calendar: icalendar.Calendar, now: Meeting, before_cal: icalendar.Calendar | None,
    before: Meeting | None, mine: set[str], stamp: datetime,
) -> tuple[bool, dict[str, icalendar.Calendar], dict[str, icalendar.Calendar]]:  # fmt: skip
    """What an organizer's write calls for (CPU work): whether the participation the
    attendees answered was put back into ``calendar``, the REQUEST to each attendee who
    must hear of it, the CANCEL to each one removed."""
    kept = False
    if before_cal is not None and not rescheduled(before_cal, calendar):
        # The meeting did not move: the participation the attendees replied with stays
        # (the organizer's client may send what it had before their replies).
        kept = keep_partstats(calendar, before_cal, now.organizer)
    if before_cal is not None and not significant(before_cal, calendar):
        # Nothing the attendees must hear of, unless SCHEDULE-FORCE-SEND asks.
        told = {a for a in now.everyone() if (x := now.attendee(a)) and x.force}
    else:
        told = now.everyone()
    requests = {}
    for who in sorted(a for a in told if a not in mine and _served(now, a)):
        message = request(calendar, who, stamp)
        if message is not None:
            requests[who] = message
    cancels = {}
    if before is not None and before_cal is not None:
        for who in sorted(before.everyone() - now.everyone() - mine):
            message = cancel(before_cal, who, stamp) if _served(before, who) else None
            if message is not None:
                cancels[who] = message
    return kept, requests, cancels


def _made_if(
    fix: Callable[[icalendar.Calendar], bool], calendar: icalendar.Calendar, changed: bool
) -> tuple[bytes, Summary] | None:
    """The copy's bytes and summary once ``fix`` is applied, if it (or ``changed``) made
    a difference (CPU work)."""
    return finished(calendar) if fix(calendar) or changed else None


def _served(found: Meeting, who: str) -> bool:
    """Whether the server schedules for attendee ``who`` (SCHEDULE-AGENT=SERVER)."""
    attendee = found.attendee(who)
    return attendee is not None and attendee.agent == "SERVER"
