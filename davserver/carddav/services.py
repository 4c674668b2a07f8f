"""What the CardDAV feature keeps for its tree, and the keys handlers reach it by."""

from __future__ import annotations

from dataclasses import dataclass

from davserver.caldav.store.layout import CalendarStore
from davserver.dav.context import Context, ServiceKey

from .search import Search


@dataclass(frozen=True, slots=True)
class CardDavSettings:
    """What contacts add to a ``caldav`` mount's settings."""

    default_user: str = "user"
    max_resource_size: int = 10 << 20


STORE = ServiceKey[CalendarStore]("carddav.store")
"""The mount's store (the one CalDAV uses), which lays out the address books."""
SETTINGS = ServiceKey[CardDavSettings]("carddav.settings")
"""The CardDAV settings of the tree."""
SEARCH = ServiceKey[Search]("carddav.search")
"""The search strings of the tree's address books (search.py)."""


def store(ctx: Context) -> CalendarStore:
    """The store of the request's tree."""
    return ctx.service(STORE)


def settings(ctx: Context) -> CardDavSettings:
    """The CardDAV settings of the request's tree."""
    return ctx.service(SETTINGS)


def search(ctx: Context) -> Search:
    """The search strings of the request's tree."""
    return ctx.service(SEARCH)
