"""The zone database's zones, by the names iCalendar objects give them in TZIDs.

Every lookup is remembered, so each is bounded: by the number of names kept and by the
length of a name looked up (a TZID is text a client chose)."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

_NAME_CHARS = 64
"""No zone's name is longer (nor a Windows zone's): a longer TZID is not looked up."""
_TZID_CHARS = 256
"""A "globally unique" TZID names its vendor before the zone: it may be longer."""


def iana(tzid: str) -> ZoneInfo | None:
    """The database's zone of exactly this name, if there is one."""
    return _iana(tzid) if len(tzid) <= _NAME_CHARS else None


@functools.lru_cache(maxsize=512)
def _iana(tzid: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def named(tzid: str) -> bool:
    """Whether this TZID is a zone of the database or a Windows zone, possibly between
    slashes: the TZIDs icalendar may resolve while it parses (it keeps each one it
    resolves, under that name: a set no larger than the database)."""
    return len(tzid) <= _NAME_CHARS and _named(tzid)


@functools.lru_cache(maxsize=1024)
def _named(tzid: str) -> bool:
    clean = tzid.strip("/")
    return iana(clean) is not None or clean in WINDOWS_TO_OLSON


def database_zone(tzid: str) -> ZoneInfo | None:
    """The database's zone a TZID stands for, as icalendar reads TZIDs: a zone's name, a
    Windows zone's name, or a "globally unique" ``/vendor/Area/City`` (RFC 5545 §3.2.19)
    taken for its longest tail that names a zone. None for any other TZID."""
    return _database_zone(tzid) if len(tzid) <= _TZID_CHARS else None


@functools.lru_cache(maxsize=1024)
def _database_zone(tzid: str) -> ZoneInfo | None:
    clean = tzid.strip("/")
    candidates = [clean, WINDOWS_TO_OLSON.get(clean, "")]
    if tzid.startswith("/"):
        parts = clean.split("/")
        candidates += ("/".join(parts[start:]) for start in range(1, len(parts)))
    for candidate in candidates:
        zone = iana(candidate) if candidate else None
        if zone is not None:
            return zone
    return None
