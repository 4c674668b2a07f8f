"""Names shared across the scheduling package."""

from __future__ import annotations

from collections.abc import Mapping

from davserver.caldav.names import C, c
from davserver.caldav.store.layout import CALENDARS, Place

INBOX = "inbox"
OUTBOX = "outbox"
BOXES = (INBOX, OUTBOX)
"""The collections every calendar home has while scheduling is on (``inbox`` holds the
messages delivered, ``outbox`` is virtual)."""
DEFAULT_CALENDAR = "calendar"
"""Where an invitation's copy goes unless the user's inbox names another calendar."""
SCHEDULER = "davserver scheduling <scheduling@localhost>"
"""The author of every write scheduling makes (no user name can hold a space, so no
request is ever taken for one of them)."""
SCHEDULE_TAG = c("schedule-tag")
DEFAULT_CALENDAR_URL = c("schedule-default-calendar-URL")
CALENDAR_TRANSP = c("schedule-calendar-transp")
FREE_BUSY_SET = c("calendar-free-busy-set")


def box_of(where: Place) -> str | None:
    """The scheduling box (``inbox``, ``outbox``) a place is or lies in, or None."""
    if where.space != CALENDARS or where.collection is None or where.user is None:
        return None
    name = where.collection.rpartition("/")[2]
    return name if name in BOXES else None


def tag_element(tag: str) -> bytes:
    """The stored (dead) property holding a schedule tag."""
    return f'<C:schedule-tag xmlns:C="{C}">{tag}</C:schedule-tag>'.encode()


def tag_of(props: Mapping[str, bytes] | None) -> str | None:
    """The schedule tag in a resource's dead properties, or None."""
    raw = (props or {}).get(SCHEDULE_TAG)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    return text[text.find(">") + 1 : text.rfind("<")].strip() or None
