"""What the CalDAV feature keeps for its tree, and the keys handlers reach it by."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from davserver.dav.context import Context, ServiceKey
from davserver.state.shares import Shares

from .store.layout import CalendarStore


def local_addresses(user: str) -> tuple[str, ...]:
    """A user's mail address when the configuration gives none: ``user@localhost``."""
    return (f"mailto:{user}@localhost",)


@dataclass(frozen=True, slots=True)
class CalDavSettings:
    """What a ``caldav`` mount adds to the WebDAV settings."""

    default_user: str = "user"
    max_resource_size: int = 10 << 20
    addresses: Callable[[str], Sequence[str]] = local_addresses
    """A user's calendar user addresses (``mailto:`` URIs, the preferred one first);
    their principal URL is one too (RFC 6638 §2.4.1)."""
    principal_search: str = "authenticated"
    """Who finds other users' principals by principal-property-search: ``everyone``,
    ``authenticated`` (anonymous requests find their own only) or ``self`` (nobody finds
    another's)."""


CALENDARS = ServiceKey[CalendarStore]("caldav.calendars")
"""The calendar store of the tree."""
SETTINGS = ServiceKey[CalDavSettings]("caldav.settings")
"""The CalDAV settings of the tree."""
SHARES = ServiceKey[Shares | None]("caldav.shares")
"""The shares of the server (None: the tree keeps none), for the sharing POST."""


def calendars(ctx: Context) -> CalendarStore:
    """The calendar store of the request's tree."""
    return ctx.service(CALENDARS)


def settings(ctx: Context) -> CalDavSettings:
    """The CalDAV settings of the request's tree."""
    return ctx.service(SETTINGS)
