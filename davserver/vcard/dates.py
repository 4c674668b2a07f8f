"""BDAY and ANNIVERSARY values between vCard 3.0 (ISO 8601 dates and date-times, extended
or basic, RFC 2426 §3.1.5; Apple marks a date without a year with X-APPLE-OMIT-YEAR and a
stand-in year) and 4.0 (ISO 8601 basic, plus the reduced forms of RFC 6350 §4.3.4:
``--MMDD`` without a year, ``YYYY-MM``, ``YYYY``, ``---DD``, times alone)."""

from __future__ import annotations

import re

from .lines import Unrepresentable

OMIT_YEAR = "X-APPLE-OMIT-YEAR"
"""Apple's parameter for a 3.0 date without year; its value is the stand-in year."""
STAND_IN_YEAR = "1604"
"""The year Apple writes for a date without year (a leap year, so Feb 29 fits)."""

_DATE = re.compile(r"(\d{4})-?(\d\d)-?(\d\d)")
_DATE_TIME = re.compile(r"(\d{4})-?(\d\d)-?(\d\d)T(\d\d):?(\d\d):?(\d\d)(Z|[+-]\d\d(?::?\d\d)?)?")
_NO_YEAR = re.compile(r"--(\d\d)-?(\d\d)")
_REDUCED = re.compile(
    r"\d{4}(-\d\d)?|--\d\d|---\d\d|T[\d:+Z-]+|\d{8}T\d\d(\d\d)?(Z|[+-]\d\d(\d\d)?)?"
)


def _zone(zone: str | None, colon: bool) -> str:
    if not zone or zone == "Z":
        return zone or ""
    digits = zone[1:].replace(":", "").ljust(4, "0")
    return f"{zone[0]}{digits[:2]}:{digits[2:]}" if colon else f"{zone[0]}{digits}"


def to_four(value: str, omit_year: str | None) -> tuple[str, bool] | None:
    """A 3.0 date or date-time in 4.0 form, and whether the X-APPLE-OMIT-YEAR year
    ``omit_year`` was used up (the date became ``--MMDD``); None if not a date."""
    value = value.strip()
    if found := _DATE_TIME.fullmatch(value):
        y, mo, d, h, mi, s, zone = found.groups()
        return f"{y}{mo}{d}T{h}{mi}{s}{_zone(zone, colon=False)}", False
    if found := _DATE.fullmatch(value):
        y, mo, d = found.groups()
        if y == omit_year:
            return f"--{mo}{d}", True
        return f"{y}{mo}{d}", False
    return None


def to_three(value: str) -> tuple[str, str | None, bool] | None:
    """A 4.0 date or date-time in 3.0 form: (value, the X-APPLE-OMIT-YEAR year or None,
    whether it is a date-time); None if not a date. Raises :class:`Unrepresentable` for
    the reduced forms 3.0 has no way to write."""
    value = value.strip()
    if found := _DATE_TIME.fullmatch(value):
        y, mo, d, h, mi, s, zone = found.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:{s}{_zone(zone, colon=True)}", None, True
    if found := _DATE.fullmatch(value):
        y, mo, d = found.groups()
        return f"{y}-{mo}-{d}", None, False
    if found := _NO_YEAR.fullmatch(value):
        mo, d = found.groups()
        return f"{STAND_IN_YEAR}-{mo}-{d}", STAND_IN_YEAR, False
    if _REDUCED.fullmatch(value):
        raise Unrepresentable(f"the date {value} in vCard 3.0")
    return None
