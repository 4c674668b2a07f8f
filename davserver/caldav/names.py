"""XML namespaces of CalDAV and its companions, and the names used across the package."""

C = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
ICAL = "http://apple.com/ns/ical/"


def c(local: str) -> str:
    """A Clark name in the CalDAV namespace."""
    return f"{{{C}}}{local}"


def cs(local: str) -> str:
    """A Clark name in the calendarserver.org namespace."""
    return f"{{{CS}}}{local}"


def dav(local: str) -> str:
    """A Clark name in the DAV: namespace."""
    return f"{{DAV:}}{local}"


COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY")
"""Components a calendar may hold; one created without a supported-calendar-component-set
accepts them all (RFC 4791 §5.2.3)."""
