"""A CalDAV tree: the WebDAV mount with calendar properties, methods and rules."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from davserver.backends.base import Resource
from davserver.backends.calendar import CalendarStore, place
from davserver.dav.identity import author
from davserver.dav.props import LiveRenderer, PropRenderer, PropRequest
from davserver.locks.manager import LockManager
from davserver.mounts.dav import DavMount, DavSettings

from . import mkcalendar, put, report
from .names import c, dav
from .props import INDEXED, SUPPORTED_COMPONENTS, components_xml, indexed_values, live_table


@dataclass(frozen=True, slots=True)
class CalDavSettings:
    """What a ``caldav`` mount adds to the WebDAV settings."""

    default_user: str = "user"
    max_resource_size: int = 10 << 20


def default_calendars() -> dict[str, dict[str, bytes]]:
    """The calendars every new home starts with: one for events, one for tasks."""

    def props(name: str, component: str) -> dict[str, bytes]:
        return {
            dav("displayname"): f'<D:displayname xmlns:D="DAV:">{name}</D:displayname>'.encode(),
            SUPPORTED_COMPONENTS: components_xml((component,), standalone=True).encode(),
        }

    return {"calendar": props("Calendar", "VEVENT"), "tasks": props("Tasks", "VTODO")}


DISCOVERY = (
    dav("current-user-principal"),
    dav("principal-URL"),
    c("calendar-home-set"),
    c("calendar-user-address-set"),
)


class CalDavMount(DavMount):
    """Principals, calendar homes and calendars over a :class:`CalendarStore`."""

    storage: CalendarStore

    def __init__(
        self,
        prefix: str,
        storage: CalendarStore,
        settings: DavSettings,
        locks: LockManager,
        caldav: CalDavSettings,
    ) -> None:
        super().__init__(prefix, storage, settings, locks)
        self.caldav = caldav
        self.methods.update(
            {
                "PUT": put.put,
                "MKCOL": mkcalendar.mkcol,
                "MKCALENDAR": mkcalendar.mkcalendar,
                "REPORT": report.report,
            }
        )
        self.options_headers = {
            **self.options_headers,
            "DAV": "1, 2, 3, calendar-access, extended-mkcol",
            "Allow": ", ".join(self.methods),
        }
        sample = live_table(prefix, caldav.default_user, caldav.max_resource_size)
        self.protected = (frozenset(sample) - {dav("displayname")}) | INDEXED

    def user(self, request: web.Request) -> str:
        """Whose calendars a request sees: the authenticated user, else the default one."""
        name = author(request)
        return name if name != "anonymous" else self.caldav.default_user

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Create the user's calendar home on their first request, then answer."""
        await self.storage.ensure_home(self.user(request), default_calendars())
        return await super().handle(request)

    def renderer(self, request: web.Request, prop_request: PropRequest) -> PropRenderer:
        """A renderer with the CalDAV live properties for this request's user."""
        renderer = super().renderer(request, prop_request)
        renderer.live = live_table(self.prefix, self.user(request), self.caldav.max_resource_size)
        return renderer

    def discovery_props(self, request: web.Request) -> dict[str, LiveRenderer]:
        """current-user-principal, principal-URL and calendar-home-set of this mount, for
        other mounts to answer with (a client may start at the server root)."""
        table = live_table(self.prefix, self.user(request), self.caldav.max_resource_size)
        return {name: table[name] for name in DISCOVERY}

    async def annotate(self, renderer: PropRenderer, batch: list[Resource]) -> None:
        """Fill in ctag and sync-token of the calendars in ``batch`` from the index."""
        wanted = renderer.request.names
        if not any(name in INDEXED for name in wanted):
            return
        for res in batch:
            where = place(res.path)
            if where.kind == "calendar" and res.is_collection and where.calendar:
                await self.storage.refresh(where.calendar)
                seq = await self.storage.index.token(where.calendar)
                renderer.values.update(indexed_values(res.path, seq))
