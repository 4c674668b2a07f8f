"""The answers a time-range query must give on the benchmark's calendar, computed directly
with recurring-ical-events (as the team's reference perf/expected.py does): per window, the
files with a VEVENT occurrence in it and the number of occurrences. The windows are given
to the library in the calendar's zone, in which it then takes floating times."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from caldav_gen import FLOATING_ZONE, correctness_windows

WINDOWS = correctness_windows()


def _hits(item: tuple[str, bytes]) -> tuple[str, dict[str, int]]:
    name, data = item
    query = recurring_ical_events.of(icalendar.Calendar.from_ical(data), components=["VEVENT"])
    hits = {}
    zone = ZoneInfo(FLOATING_ZONE)
    for window, (start, end) in WINDOWS.items():
        n = len(query.between(start.astimezone(zone), end.astimezone(zone)))
        if n:
            hits[window] = n
    return name, hits


def expected(items: list[tuple[str, bytes]], cache: Path) -> dict[str, dict]:
    """{window: {"files": sorted names, "occurrences": n}}, cached in ``cache``."""
    if cache.exists():
        return json.loads(cache.read_text())
    out: dict[str, dict] = {w: {"files": [], "occurrences": 0} for w in WINDOWS}
    with ProcessPoolExecutor(2) as pool:
        for name, hits in pool.map(_hits, items, chunksize=200):
            for window, n in hits.items():
                out[window]["files"].append(name)
                out[window]["occurrences"] += n
    for v in out.values():
        v["files"].sort()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def window(name: str) -> tuple[datetime, datetime]:
    """The bounds of a named window."""
    return WINDOWS[name]
