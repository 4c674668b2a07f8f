"""The UID and main component type of an iCalendar object, read without parsing it: what
the index keeps of a file that is not valid iCalendar."""

from __future__ import annotations

import re

_UNFOLD = re.compile(rb"\r?\n[ \t]")
_MAIN = {b"VEVENT", b"VTODO", b"VJOURNAL", b"VFREEBUSY"}


def scan_item(data: bytes) -> tuple[str | None, str | None]:
    """The UID and main component type of an iCalendar object, read without parsing it
    (the first VEVENT, VTODO, VJOURNAL or VFREEBUSY and the UID directly inside it)."""
    component: bytes | None = None
    depth = 0
    for line in _UNFOLD.sub(b"", data).splitlines():
        name, _, value = line.partition(b":")
        key = name.partition(b";")[0].strip().upper()
        if key == b"BEGIN":
            depth += 1
            if depth == 2 and component is None and value.strip().upper() in _MAIN:
                component = value.strip().upper()
        elif key == b"END":
            depth -= 1
        elif key == b"UID" and depth == 2 and component is not None:
            return value.strip().decode("utf-8", "replace"), component.decode()
    return None, component.decode() if component else None
