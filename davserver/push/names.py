"""The WebDAV-Push namespace and its element names."""

from __future__ import annotations

NS = "https://bitfire.at/webdav-push"
"""The draft's XML namespace."""
COMPLIANCE = "webdav-push"
"""The ``DAV:`` header token."""
PARAMETER = "push-registration"
"""The query parameter of a registration URL: ``<collection>?push-registration=<id>``."""
DONT_NOTIFY = "Push-Dont-Notify"
"""The request header naming registrations the request's changes are not sent to."""


def p(local: str) -> str:
    """The Clark name of a WebDAV-Push element."""
    return f"{{{NS}}}{local}"


def dav(local: str) -> str:
    """The Clark name of a DAV: element."""
    return f"{{DAV:}}{local}"


TRANSPORTS = p("transports")
TOPIC = p("topic")
SUPPORTED_TRIGGERS = p("supported-triggers")
PUSH_REGISTER = p("push-register")
INVALID_SUBSCRIPTION = p("invalid-subscription")
PUSH_NOT_AVAILABLE = p("push-not-available")
NO_SUPPORTED_TRIGGER = p("no-supported-trigger")
