"""The one way scheduling writes into calendars.

Every delivery (an iTIP message put into a user's inbox, and what it does to their copy
of the meeting: made, updated, cancelled, or the organizer's copy told of a reply) and
every change the server makes to a copy its owner wrote (SCHEDULE-STATUS, the schedule
tag) goes through :class:`Postman`: one change of the store by :data:`SCHEDULER`, with
an audit line on the ``davserver.scheduling.audit`` logger. A delivery writes into
another user's home: the owner-only rule, which every request meets in the mount, does
not apply to it, and nothing else writes there.

Copies are read, changed and written back with the ETag read as the write's
precondition, so a copy its owner changed meanwhile is read again rather than lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from urllib.parse import unquote, urlsplit

import icalendar
from lxml import etree

from davserver.backends.base import (
    DeadProps,
    NotFound,
    Precondition,
    PreconditionFailed,
    PropsUpdate,
    Resource,
)
from davserver.caldav.put import supported_components
from davserver.caldav.store.layout import CALENDARS, CalendarStore, place
from davserver.dav.preconditions import absent
from davserver.ical import zones
from davserver.ical.itip import apply_reply, attendee_copy, cancelled_copy, serialize
from davserver.ical.meeting import Meeting, meeting, scheduled
from davserver.ical.objects import InvalidObject
from davserver.ical.strict import value_problem
from davserver.ical.summary import Summary, summarize_calendar
from davserver.runtime.threads import offload
from davserver.state.mutex import Mutexes

from .directory import Directory
from .mail import NOT_A_USER, Mailer, imip_message
from .names import (
    BOXES,
    DEFAULT_CALENDAR,
    DEFAULT_CALENDAR_URL,
    INBOX,
    SCHEDULE_TAG,
    SCHEDULER,
    box_of,
    tag_element,
)
from .records import Record, Records

audit = logging.getLogger("davserver.scheduling.audit")
log = logging.getLogger("davserver.scheduling")

DELIVERED = "1.2"
TRY_LATER = "5.1"
READ_LIMIT = 16 << 20
ATTEMPTS = 3
"""Times a delivery is tried when the copy it changes was changed meanwhile."""
_PLAIN_UID = re.compile(r"[A-Za-z0-9@._-]{1,100}")


def new_tag() -> str:
    """A fresh schedule tag (an opaque quoted string, as an ETag is)."""
    return f'"{secrets.token_hex(8)}"'


def _same(etag: str) -> Precondition:
    def expect(current: Resource | None) -> None:
        if current is None or current.etag != etag:
            raise PreconditionFailed("the copy changed meanwhile")

    return expect


def _with_tag(tag: str) -> PropsUpdate:
    def update(current: DeadProps) -> DeadProps:
        return {**current, SCHEDULE_TAG: tag_element(tag)}

    return update


def copy_name(uid: str) -> str:
    """The name a new copy of meeting ``uid`` gets: its UID when that is plain, else a
    digest of it."""
    if _PLAIN_UID.fullmatch(uid):
        return f"{uid}.ics"
    return f"sched-{hashlib.sha256(uid.encode()).hexdigest()[:32]}.ics"


def href_path(prefix: str, text: str) -> str | None:
    """The mount path an href (absolute URL or path) names below ``prefix``."""
    path = unquote(urlsplit(text.strip()).path)
    if not path.startswith(prefix + "/"):
        return None
    return path[len(prefix) + 1 :].strip("/")


@dataclasses.dataclass(slots=True)
class _Copy:
    """What a delivery does to the recipient's copy of the meeting."""

    path: str
    data: bytes
    summary: Summary
    role: str
    expect: Precondition
    tag: str | None


def finished(calendar: icalendar.Calendar) -> tuple[bytes, Summary]:
    """The bytes and the index's summary of a copy scheduling made (CPU work). The
    values are checked as a PUT checks them (a message POSTed by a client is the
    source of some copies)."""
    problem = value_problem(calendar)
    if problem is not None:
        raise InvalidObject("valid-calendar-data", problem)
    return serialize(calendar), summarize_calendar(calendar, time.time())


def _message_parts(message: icalendar.Calendar) -> tuple[bytes, Summary, Meeting | None]:
    """A message's bytes, the index's summary of it (in the inbox) and its meeting."""
    return serialize(message), summarize_calendar(message, time.time()), meeting(message)


def _changed_copy(
    method: str, message: icalendar.Calendar, current: icalendar.Calendar | None
) -> tuple[bytes, Summary] | None:
    """What ``message`` makes of the copy ``current`` (None: it changes nothing)."""
    if method == "REQUEST":
        return finished(attendee_copy(message, current))
    if current is None:
        return None
    if method == "REPLY" and apply_reply(current, message):
        return finished(current)
    if method == "CANCEL" and cancelled_copy(current, message):
        return finished(current)
    return None


def _fixed(
    fix: Callable[[icalendar.Calendar], bool], calendar: icalendar.Calendar
) -> tuple[bytes, Summary] | None:
    return finished(calendar) if fix(calendar) else None


class Postman:
    """Delivers iTIP messages (into inboxes here, by mail elsewhere) and amends copies."""

    def __init__(
        self, prefix: str, store: CalendarStore, records: Records, directory: Directory,
        mailer: Mailer, mutexes: Mutexes,
    ) -> None:  # fmt: skip
        self.prefix = prefix
        self.store = store
        self.records = records
        self.directory = directory
        self.mailer = mailer
        self.mutexes = mutexes
        """Held across each read, change and write of a user's copy of a meeting, in every
        worker: replies arriving together on several workers would otherwise each write
        the organizer's copy they read, and all but one be lost. A holder takes no other
        lock (a delivery writes, and its events are not scheduled again)."""

    def _copy_lock(self, user: str, uid: str) -> AbstractAsyncContextManager[None]:
        return self.mutexes.hold(f"meeting\0{user}\0{uid}")

    # -- deliveries ------------------------------------------------------------------

    async def deliver(
        self, message: icalendar.Calendar, recipient: str, sender: str, sender_user: str | None
    ) -> str:
        """Deliver ``message`` (from ``sender``, a local user's address or None for a
        sender elsewhere) to ``recipient``; their SCHEDULE-STATUS."""
        method = str(message.get("METHOD", "")).upper()
        user = self.directory.user_of(recipient)
        if user is None:
            return await self._mail(method, message, recipient, sender)
        if user == sender_user:
            return DELIVERED  # another address of the sender: nothing to bring them
        inbox = f"{CALENDARS}/{user}/{INBOX}/{uuid.uuid4().hex}.ics"
        data, note, found = await offload(_message_parts, message)
        uid = found.uid if found is not None else ""
        async with self._copy_lock(user, uid):
            for _ in range(ATTEMPTS):
                try:
                    await self._local(method, message, data, note, user, inbox, sender, found)
                    return DELIVERED
                except PreconditionFailed:
                    continue  # its owner changed the copy meanwhile: read it again
            log.warning("%s %s to %s: the copy kept changing, left as it is", method, uid, user)
            await self._local(method, message, data, note, user, inbox, sender, None)
        return DELIVERED

    async def _local(
        self, method: str, message: icalendar.Calendar, data: bytes, note: Summary, user: str,
        inbox: str, sender: str, found: Meeting | None,
    ) -> None:  # fmt: skip
        """Write the message into ``user``'s inbox and change their copy (none when the
        meeting is ``found`` None)."""
        uid = found.uid if found is not None else ""
        copy = None
        if found is not None:
            try:
                copy = await self._copy(method, message, user, uid, found.component)
            except InvalidObject as exc:
                log.warning("%s %s for %s: the copy would not be valid: %s", method, uid, user,
                            exc.reason)  # fmt: skip
        what = f"schedule {method} {uid} for {user} from {sender}"
        async with self.store.change(author=SCHEDULER, message=what) as change:
            await change.write(inbox, data, note=note)
            if copy is not None:
                await change.write(copy.path, copy.data, expect=copy.expect, note=copy.summary)
                if copy.tag is not None:
                    await change.set_props(copy.path, _with_tag(copy.tag))
        audit.info(
            "%s: %s %s from %s delivered to %s (inbox %s%s)", self.prefix or "/", method, uid,
            sender, user, inbox, f", copy {copy.path}" if copy is not None else "",
        )  # fmt: skip
        if copy is not None:
            await self.records.put(Record(copy.path, user, uid, copy.role, copy.data))

    async def _copy(
        self, method: str, message: icalendar.Calendar, user: str, uid: str, component: str
    ) -> _Copy | None:
        """What the message does to ``user``'s copy (None: nothing)."""
        if method not in ("REQUEST", "CANCEL", "REPLY"):
            return None
        role = "organizer" if method == "REPLY" else "attendee"
        record = await self.records.find(user, uid, role) if uid else None
        current = await self._read(record.path) if record is not None else None
        if record is None or current is None:
            if method != "REQUEST":
                return None  # nothing to cancel, or to tell of a reply
            path = await self._new_copy_path(user, component, uid)
            if path is None:
                return None
            there = await self.store.stat(path)
            expect = _same(there.etag) if there is not None else absent()
            old = None
        else:
            path, expect, old = record.path, _same(current[0].etag), current[2]
        made = await offload(_changed_copy, method, message, old)
        if made is None:
            return None
        tag = None if method == "REPLY" else new_tag()  # the organizer's tag stays
        return _Copy(path, made[0], made[1], role, expect, tag)

    async def _read(self, path: str) -> tuple[Resource, bytes, icalendar.Calendar] | None:
        """A copy as stored now and its parse (None when it is gone or unreadable). Read
        from the store, not from what the index remembers: another worker may have
        changed it a moment ago, and the write that follows expects this very version."""
        try:
            body = await self.store.read(path, inline_limit=READ_LIMIT)
        except NotFound:
            return None
        if body.file is not None:  # far too big for a calendar object
            await offload(body.file.close)
            return None
        if body.data is None or body.resource.is_collection:
            return None
        try:
            calendar = await offload(zones.parse, body.data)
        except ValueError:
            return None
        return body.resource, body.data, calendar

    async def _new_copy_path(self, user: str, component: str, uid: str) -> str | None:
        """Where a new copy of meeting ``uid`` goes in ``user``'s calendars: the item of
        that UID in the calendar the inbox names as default (else ``calendar``, else the
        first that takes the component), or a new item there."""
        home = f"{CALENDARS}/{user}"
        inbox = await self.store.stat(f"{home}/{INBOX}", dead_props=True)
        wanted = []
        raw = (inbox.dead_props or {}).get(DEFAULT_CALENDAR_URL) if inbox is not None else None
        if raw is not None:
            link = etree.fromstring(raw).findtext("{DAV:}href")
            path = href_path(self.prefix, link or "")
            if path is not None:
                wanted.append(path)
        wanted.append(f"{home}/{DEFAULT_CALENDAR}")
        chosen = None
        for path in wanted:
            if await self._takes(path, user, component):
                chosen = path
                break
        if chosen is None:
            async for batch in self.store.children(home, dead_props=True):
                for res in batch:
                    if await self._takes(res.path, user, component, res):
                        chosen = res.path
                        break
                if chosen is not None:
                    break
        if chosen is None:
            return None
        calendar = place(chosen).calendar
        assert calendar is not None
        items = await self.store.refresh(calendar)
        same = sorted(items.with_uid(uid))
        if same:
            return f"{chosen}/{same[0]}"
        name = copy_name(uid)
        if name in items:
            name = f"sched-{hashlib.sha256(uid.encode()).hexdigest()[:32]}.ics"
        return f"{chosen}/{name}"

    async def _takes(
        self, path: str, user: str, component: str, res: Resource | None = None
    ) -> bool:
        """Whether ``path`` is a calendar of ``user`` that takes ``component``."""
        where = place(path)
        if where.kind != "calendar" or where.user != user or box_of(where) in BOXES:
            return False
        if res is None:
            res = await self.store.stat(path, dead_props=True)
        if res is None or not res.is_collection:
            return False
        return component in supported_components(res.dead_props)

    async def _mail(
        self, method: str, message: icalendar.Calendar, recipient: str, sender: str
    ) -> str:
        """Send the message by mail (iMIP) to an address elsewhere."""
        if not recipient.startswith("mailto:"):
            return NOT_A_USER
        components = scheduled(message)
        summary = str(components[0].get("SUMMARY", "")) if components else ""
        reply_to = sender[7:] if sender.startswith("mailto:") else self.mailer.settings.sender
        mail = imip_message(
            method, serialize(message), sender=self.mailer.settings.sender or reply_to,
            recipient=recipient[7:], reply_to=reply_to, summary=summary,
        )  # fmt: skip
        status = await self.mailer.send(mail)
        audit.info(
            "%s: %s from %s mailed to %s: %s", self.prefix or "/", method, sender, recipient,
            status,
        )  # fmt: skip
        return status

    # -- the copy a user wrote -------------------------------------------------------------

    async def amend(
        self, path: str, user: str, uid: str, role: str, etag: str, written: bytes,
        made: tuple[bytes, Summary] | None, fix: Callable[[icalendar.Calendar], bool],
        tag: str | None, why: str,
    ) -> Resource | None:  # fmt: skip
        """Store what scheduling made of the copy its owner wrote at ``path``: the bytes
        ``written`` (ETag ``etag``) became ``made`` (bytes and summary; None: unchanged),
        with the schedule tag ``tag`` (None: kept). When a delivery changed the copy
        since (a reply came in), ``fix`` (which sets the statuses) is applied to it as it
        is now instead.
        The copy is recorded as stored; the resource, or None when its owner changed it
        again (that write is scheduled in turn)."""
        data, summary = made if made is not None else (None, None)
        async with self._copy_lock(user, uid):
            res = await self.store.stat(path)
            if res is None:
                return None
            stored = written
            if res.etag != etag:
                current = await self._read(path)
                record = await self.records.get(path)
                if current is None or record is None or record.data != current[1]:
                    await self.records.put(Record(path, user, uid, role, written))
                    return None  # its owner's again: that change has its own event
                res, stored, calendar = current
                made = await offload(_fixed, fix, calendar)
                data, summary = made if made is not None else (None, None)
            final = data if data is not None else stored
            if data is not None or tag is not None:
                try:
                    async with self.store.change(author=SCHEDULER, message=why) as change:
                        if data is not None:
                            res, _ = await change.write(
                                path, data, expect=_same(res.etag), note=summary
                            )
                        if tag is not None:
                            await change.set_props(path, _with_tag(tag), expect=_same(res.etag))
                except PreconditionFailed:
                    log.info("%s: changed again meanwhile, left as it is", path)
                    await self.records.put(Record(path, user, uid, role, written))
                    return None
                audit.info("%s: %s", self.prefix or "/", why)
            await self.records.put(Record(path, user, uid, role, final))
            return res
