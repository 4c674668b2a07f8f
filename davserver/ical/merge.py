"""Calendar objects merged into one calendar (a whole collection as one ``.ics`` file,
for a download or a read-only subscription): the components of each object, each time
zone once. Text in, text out: the objects are not parsed, so what clients stored is
what the file holds."""

from __future__ import annotations

import re

_TZID = re.compile(r"^TZID[;:](?:[^\r\n]*:)?([^\r\n]*)", re.MULTILINE | re.IGNORECASE)
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\\;,]")


def header(name: str) -> str:
    """The start of the merged calendar, named ``name`` (``X-WR-CALNAME``)."""
    safe = _NAME_UNSAFE.sub(" ", name)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davserver//export//EN\r\n"
        f"CALSCALE:GREGORIAN\r\nX-WR-CALNAME:{safe}\r\n"
    )


FOOTER = "END:VCALENDAR\r\n"


def components(text: str, zones: set[str]) -> str:
    """The components of one calendar object (everything between its ``BEGIN:VCALENDAR``
    and ``END:VCALENDAR`` but its own properties); a ``VTIMEZONE`` whose TZID is in
    ``zones`` is left out, and the others' TZIDs are added to it."""
    out: list[str] = []
    block: list[str] = []
    depth = 0
    kind = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
            if depth == 2:
                kind, block = upper[6:].strip(), []
        if depth >= 2:
            block.append(line)
        if upper.startswith("END:"):
            if depth == 2:
                if kind == "VTIMEZONE":
                    unfolded = "\n".join(block).replace("\n ", "").replace("\n\t", "")
                    found = _TZID.search(unfolded)
                    tzid = found[1].strip() if found else ""
                    if tzid in zones:
                        block = []
                    zones.add(tzid)
                out.extend(block)
                block = []
            depth -= 1
    return "".join(line + "\r\n" for line in out)
