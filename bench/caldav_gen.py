"""The benchmark's calendar: deterministic, realistic VEVENT resources (one VCALENDAR each),
and the time windows queried. Adapted from the team's reference generator
(shared/bench/caldav/perf/gen_events.py and windows.py), copied here so that nothing outside
the repository is needed at run time.

Default: 10,000 events over 2024-01-01 .. 2026-12-31; about 10 % recurring (WEEKLY, some
BYDAY=MO,WE,FR, or DAILY, ended by COUNT or UNTIL, some with an EXDATE or an overridden
instance); 30 % Europe/Berlin and 20 % America/New_York (with VTIMEZONE), 40 % UTC, 10 %
all-day; 10 % of the timed events with DURATION instead of DTEND. Then 1,000 events with
floating times (no TZID, no Z; 10 % recurring), which happen in the calendar's
calendar-timezone (FLOATING_ZONE, set when the calendar is made).
"""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

VTZ = {
    "Europe/Berlin": """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE""",
    "America/New_York": """BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE""",
}

WORDS = [
    "project",
    "sync",
    "review",
    "planning",
    "budget",
    "design",
    "sprint",
    "retro",
    "customer",
    "call",
    "lunch",
    "dentist",
    "gym",
    "yoga",
    "standup",
    "interview",
    "onboarding",
    "workshop",
    "release",
    "board",
    "meeting",
    "quarterly",
    "report",
    "training",
    "webinar",
    "conference",
    "travel",
    "flight",
    "hotel",
    "dinner",
    "birthday",
    "party",
    "doctor",
    "school",
    "parents",
    "evening",
    "football",
    "practice",
    "piano",
    "lesson",
    "maintenance",
    "deploy",
    "backup",
    "audit",
]
PLACES = [
    "Room 101",
    "Room 2.14",
    "Berlin Office",
    "NYC HQ, 5th floor",
    "Zoom",
    "Cafe Central",
    "Hauptbahnhof",
    "Online",
    "Conference Center Hall B",
    "Home",
    "Client site",
    "",
]
CATS = ["WORK", "PERSONAL", "TRAVEL", "HEALTH", "FAMILY", "MEETING"]

START_DAY = date(2024, 1, 1)
N_DAYS = (date(2026, 12, 31) - START_DAY).days  # last possible start day offset
DTSTAMP = "20240101T000000Z"


def fold(line: str) -> str:
    """RFC 5545 line folding at 75 octets."""
    b = line.encode("utf-8")
    if len(b) <= 75:
        return line
    out, cur = [], b""
    for ch in line:
        cb = ch.encode("utf-8")
        limit = 75 if not out else 74
        if len(cur) + len(cb) > limit:
            out.append(cur.decode("utf-8"))
            cur = b""
        cur += cb
    out.append(cur.decode("utf-8"))
    return "\r\n ".join(out)


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def fmt_local(d: datetime) -> str:
    return d.strftime("%Y%m%dT%H%M%S")


def fmt_utc(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def fmt_date(d: date) -> str:
    return d.strftime("%Y%m%d")


def make_event(i: int, rnd: random.Random) -> tuple[str, str, dict]:
    uid = f"perf-{i:05d}-{rnd.getrandbits(48):012x}@anchors.example"
    r = rnd.random()
    kind = (
        "allday"
        if r < 0.10
        else "Europe/Berlin"
        if r < 0.40
        else "America/New_York"
        if r < 0.60
        else "UTC"
    )
    day = START_DAY + timedelta(days=rnd.randint(0, N_DAYS))
    recurring = rnd.random() < 0.10
    meta = {"uid": uid, "kind": kind, "recurring": recurring}

    summary = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4))).capitalize()
    props = [
        f"UID:{uid}",
        f"DTSTAMP:{DTSTAMP}",
        f"SUMMARY:{esc(summary)}",
        f"SEQUENCE:{rnd.randint(0, 3)}",
        f"STATUS:{rnd.choice(['CONFIRMED', 'CONFIRMED', 'TENTATIVE'])}",
    ]
    loc = rnd.choice(PLACES)
    if loc:
        props.append(f"LOCATION:{esc(loc)}")
    if rnd.random() < 0.4:
        desc = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 60)))
        if rnd.random() < 0.3:
            desc += "\nAgenda:\n1. " + " ".join(rnd.choice(WORDS) for _ in range(8))
        props.append(f"DESCRIPTION:{esc(desc)}")
    if rnd.random() < 0.5:
        props.append(
            "CATEGORIES:"
            + ",".join(sorted(set(rnd.choice(CATS) for _ in range(rnd.randint(1, 2)))))
        )

    # --- start / end -------------------------------------------------------
    if kind == "allday":
        ndays = rnd.choice([1, 1, 1, 2, 3])
        start_val = day
        dtstart = f"DTSTART;VALUE=DATE:{fmt_date(day)}"
        dtend = f"DTEND;VALUE=DATE:{fmt_date(day + timedelta(days=ndays))}"
        step_fmt = lambda d: f";VALUE=DATE:{fmt_date(d)}"  # noqa: E731
    else:
        hour = rnd.randint(7, 19)
        minute = rnd.choice([0, 0, 15, 30, 45])
        dur = timedelta(minutes=rnd.choice([15, 30, 30, 45, 60, 60, 60, 90, 120, 180]))
        if kind == "UTC":
            start_val = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
            dtstart = f"DTSTART:{fmt_utc(start_val)}"
            end_s = f"DTEND:{fmt_utc(start_val + dur)}"
            step_fmt = lambda d: f":{fmt_utc(d)}"  # noqa: E731
        else:
            tz = ZoneInfo(kind)
            start_val = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
            dtstart = f"DTSTART;TZID={kind}:{fmt_local(start_val)}"
            end_s = f"DTEND;TZID={kind}:{fmt_local(start_val + dur)}"
            step_fmt = lambda d, k=kind: f";TZID={k}:{fmt_local(d)}"  # noqa: E731
        if rnd.random() < 0.10:
            mins = int(dur.total_seconds() // 60)
            dtend = f"DURATION:PT{mins // 60}H{mins % 60}M" if mins >= 60 else f"DURATION:PT{mins}M"
        else:
            dtend = end_s
    props[1:1] = [dtstart, dtend]

    # --- recurrence ----------------------------------------------------------
    override = None
    if recurring:
        freq = "WEEKLY" if rnd.random() < 0.6 else "DAILY"
        step = timedelta(days=7 if freq == "WEEKLY" else 1)
        byday = freq == "WEEKLY" and rnd.random() < 0.2
        rule = f"FREQ={freq}"
        if byday:
            rule += ";BYDAY=MO,WE,FR"
        if rnd.random() < 0.5:
            count = rnd.randint(4, 52) if freq == "WEEKLY" else rnd.randint(3, 30)
            rule += f";COUNT={count}"
            meta["count"] = count
        else:
            n = rnd.randint(4, 52) if freq == "WEEKLY" else rnd.randint(3, 60)
            last = start_val + step * n
            # RFC 5545: UNTIL in UTC when DTSTART has TZID or is UTC
            until = fmt_date(last) if kind == "allday" else fmt_utc(last)
            rule += f";UNTIL={until}"
            meta["until"] = until
        props.append(f"RRULE:{rule}")
        meta["rrule"] = rule
        if not byday:  # simple arithmetic for the nth instance is valid
            if rnd.random() < 0.15:
                props.append("EXDATE" + step_fmt(start_val + step))
                meta["exdate"] = True
            elif rnd.random() < 0.06:
                rid = start_val + step * 2
                moved = rid + (timedelta(days=1) if kind == "allday" else timedelta(hours=2))
                o = [f"UID:{uid}", f"DTSTAMP:{DTSTAMP}", "RECURRENCE-ID" + step_fmt(rid)]
                if kind == "allday":
                    o += [
                        f"DTSTART;VALUE=DATE:{fmt_date(moved)}",
                        f"DTEND;VALUE=DATE:{fmt_date(moved + timedelta(days=1))}",
                    ]
                else:
                    o += [
                        "DTSTART" + step_fmt(moved),
                        "DTEND" + step_fmt(moved + timedelta(hours=1)),
                    ]
                o.append(f"SUMMARY:{esc(summary)} (moved)")
                override = o
                meta["override"] = True

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//anchors//caldav-perf-gen//EN",
        "CALSCALE:GREGORIAN",
    ]
    if kind in VTZ:
        lines += VTZ[kind].split("\n")
    lines += ["BEGIN:VEVENT", *props, "END:VEVENT"]
    if override:
        lines += ["BEGIN:VEVENT", *override, "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return uid, "\r\n".join(fold(x) for x in lines) + "\r\n", meta


FLOATING_ZONE = "Europe/Berlin"
"""The calendar-timezone of the benchmark's calendar: where its floating events happen."""


def make_floating(i: int, rnd: random.Random) -> tuple[str, str]:
    """One event at a floating time (a wall-clock time in the calendar's zone)."""
    uid = f"float-{i:05d}-{rnd.getrandbits(48):012x}@anchors.example"
    day = START_DAY + timedelta(days=rnd.randint(0, N_DAYS))
    start = datetime(day.year, day.month, day.day, rnd.randint(7, 19), rnd.choice([0, 15, 30, 45]))
    end = start + timedelta(minutes=rnd.choice([30, 60, 60, 90]))
    summary = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4))).capitalize()
    props = [
        f"UID:{uid}", f"DTSTAMP:{DTSTAMP}", f"DTSTART:{fmt_local(start)}",
        f"DTEND:{fmt_local(end)}", f"SUMMARY:{esc(summary)}",
    ]  # fmt: skip
    if rnd.random() < 0.10:
        props.append(f"RRULE:FREQ={rnd.choice(['DAILY', 'WEEKLY'])};COUNT={rnd.randint(3, 20)}")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//anchors//caldav-perf-gen//EN",
             "BEGIN:VEVENT", *props, "END:VEVENT", "END:VCALENDAR"]  # fmt: skip
    return uid, "\r\n".join(fold(x) for x in lines) + "\r\n"


def generate(n: int, seed: int, floating: int = 0) -> list[tuple[str, bytes]]:
    """(file name, bytes) of ``n`` events, then ``floating`` floating ones, the same for
    the same seed (the first ``n`` do not depend on ``floating``)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        uid, text, _meta = make_event(i, rnd)
        out.append((f"{uid.split('@')[0]}.ics", text.encode()))
    rnd = random.Random(seed + 1)
    for i in range(floating):
        uid, text = make_floating(i, rnd)
        out.append((f"{uid.split('@')[0]}.ics", text.encode()))
    return out


# The two timed windows: the week right after the US DST switch (2025-03-09), the month with
# the EU switch (2025-03-30). Bounds at 12:00Z, so that all-day (floating) events are
# unambiguous whatever time zone a server assumes for them.
WEEK = (datetime(2025, 3, 10, 12, tzinfo=UTC), datetime(2025, 3, 17, 12, tzinfo=UTC))
MONTH = (datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2025, 4, 1, 12, tzinfo=UTC))


def correctness_windows() -> dict[str, tuple[datetime, datetime]]:
    """Named windows whose answers are checked (28 of them)."""
    w = {"week": WEEK, "month": MONTH}
    base = datetime(2024, 1, 8, 12, tzinfo=UTC)
    for k in range(12):  # 12 weeks spread over the 3 years
        s = base + timedelta(weeks=13 * k)
        w[f"week-{s:%Y%m%d}"] = (s, s + timedelta(days=7))
    for y, m in [(2024, 2), (2024, 6), (2024, 10), (2025, 1), (2025, 7),
                 (2025, 11), (2026, 4), (2026, 8), (2026, 12)]:  # fmt: skip
        s = datetime(y, m, 1, 12, tzinfo=UTC)
        e = datetime(y + (m == 12), m % 12 + 1, 1, 12, tzinfo=UTC)
        w[f"month-{s:%Y%m}"] = (s, e)
    for d in [(2024, 10, 26), (2024, 11, 2), (2026, 3, 7), (2026, 3, 28)]:  # DST switches
        s = datetime(*d, 12, tzinfo=UTC)
        w[f"dst-{s:%Y%m%d}"] = (s, s + timedelta(days=2))
    return w


def ical_utc(d: datetime) -> str:
    """A UTC date-time in iCalendar form."""
    return d.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
