"""Free-busy time (RFC 4791 §7.10, RFC 5545 §3.6.4): the busy periods of events in a range,
merged per kind of busy time, as one VFREEBUSY. Transparent and cancelled events leave the
time free; tentative ones make it BUSY-TENTATIVE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

import icalendar

from .spans import Span, absolute, main_components, overlaps, spans_between
from .timerange import TimeRange
from .zones import parse

PRODID = "-//davserver//free-busy//EN"
Period = tuple[float, float]


def _kind(component: icalendar.cal.Component) -> str | None:
    """The FBTYPE an event's time counts as (None: free)."""
    if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    status = str(component.get("STATUS", "")).upper()
    if status == "CANCELLED":
        return None
    return "BUSY-TENTATIVE" if status == "TENTATIVE" else "BUSY"


def busy_periods(
    data: bytes, spans: Sequence[Span] | None, rng: TimeRange, zone: tzinfo | None = None
) -> list[tuple[str, float, float]]:
    """(FBTYPE, start, end) of the busy time of one object within the range (floating
    times and dates in ``zone``, None: UTC)."""
    try:
        calendar = parse(data)
    except (ValueError, IndexError, KeyError, TypeError):
        return []
    main = main_components(calendar)
    if spans is None:
        spans = spans_between(calendar, "VEVENT", rng.lo, rng.hi)
    out = []
    for found in spans:
        span = absolute(found, zone)
        component = main[span.source]
        if component.name != "VEVENT" or span.end <= span.start:
            continue
        if not overlaps(span, rng.lo, rng.hi):
            continue
        kind = _kind(component)
        if kind is not None:
            out.append((kind, max(span.start, rng.lo), min(span.end, rng.hi)))
    return out


def merged(periods: list[Period]) -> list[Period]:
    """Overlapping or touching periods joined, in order."""
    out: list[Period] = []
    for start, end in sorted(periods):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _stamp(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y%m%dT%H%M%SZ")


def vfreebusy(busy: list[tuple[str, float, float]], rng: TimeRange, now: float) -> str:
    """The iCalendar text of the answer."""
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "BEGIN:VFREEBUSY",
        f"DTSTAMP:{_stamp(now)}", f"DTSTART:{_stamp(rng.lo)}", f"DTEND:{_stamp(rng.hi)}",
    ]  # fmt: skip
    for kind in ("BUSY", "BUSY-TENTATIVE"):
        periods = merged([(s, e) for k, s, e in busy if k == kind])
        if periods:
            values = ",".join(f"{_stamp(s)}/{_stamp(e)}" for s, e in periods)
            lines.append(f"FREEBUSY;FBTYPE={kind}:{values}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def all_busy(
    bodies: list[bytes | None],
    hints: list[Sequence[Span] | None],
    rng: TimeRange,
    zone: tzinfo | None = None,
) -> list[tuple[str, float, float]]:
    """The busy periods of several objects (CPU work: off the event loop)."""
    out = []
    for data, spans in zip(bodies, hints, strict=True):
        if data is not None:
            out.extend(busy_periods(data, spans, rng, zone))
    return out
