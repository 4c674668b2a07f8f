"""Scheduling (RFC 6638) as a feature of a ``caldav`` tree, after CalDAV.

It adds the ``calendar-auto-schedule`` compliance, each user's inbox and outbox (two
collections every calendar home has: the inbox holds the messages delivered, the outbox
is virtual and answers POST), the scheduling properties, the schedule tag in PUT and GET
answers and as a precondition, and implicit scheduling: a subscriber of the tree's change
events (implicit.py) that delivers through one audited write path (deliver.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from davserver.backends.base import Resource
from davserver.caldav.store.layout import CalendarStore
from davserver.dav.context import Context, ServiceKey, Tree
from davserver.dav.features import Feature, Handler, LiveProperty, Report
from davserver.dav.props import LiveRenderer
from davserver.runtime.threads import offload
from davserver.state.mutex import Mutexes

from . import handlers, outbox
from .deliver import Postman
from .directory import Directory
from .implicit import Scheduler
from .mail import Mailer
from .names import DEFAULT_CALENDAR_URL
from .props import SETTABLE, STORED, box_privileges, default_target, properties, refused
from .records import Records
from .services import SCHEDULER_KEY

if TYPE_CHECKING:
    from davserver.events import EventBus


class Scheduling(Feature):
    """Scheduling over the tree's calendar store."""

    compliance = ("calendar-auto-schedule",)

    def __init__(
        self,
        prefix: str,
        store: CalendarStore,
        directory: Directory,
        records: Records,
        mailer: Mailer,
        mutexes: Mutexes,
    ) -> None:
        self.prefix = prefix
        self.store = store
        self.records = records
        self.mailer = mailer
        self.mutexes = mutexes
        postman = Postman(prefix, store, records, directory, mailer, mutexes)
        self.scheduler = Scheduler(store, records, directory, postman)
        self._renderers = properties(prefix)
        self._properties = {
            name: LiveProperty(render, protected=name not in SETTABLE, stored=name in STORED)
            for name, render in self._renderers.items()
        }

    def methods(self) -> Mapping[str, Handler]:
        """POST to the outbox; PUT, GET, DELETE with the schedule tag; the inbox's and
        outbox's rules for COPY, MOVE and PROPPATCH."""
        return {
            "POST": outbox.post,
            "PUT": handlers.put,
            "GET": handlers.get,
            "HEAD": handlers.get,
            "DELETE": handlers.delete,
            "COPY": handlers.copy_or_move,
            "MOVE": handlers.copy_or_move,
            "PROPPATCH": handlers.proppatch,
        }

    def reports(self) -> Mapping[str, Report]:
        """free-busy-query refused on the inbox and outbox."""
        return handlers.REPORTS

    def properties(self) -> Mapping[str, LiveProperty]:
        """The scheduling properties of principals, the inbox and outbox, calendars and
        scheduling objects."""
        return self._properties

    def user_properties(self, principal: str | None) -> Mapping[str, LiveRenderer]:
        """The same renderers for every user; given here too, so that they come before
        CalDAV's own per-user ones (resourcetype)."""
        return self._renderers

    def privileges(self, path: str, granted: tuple[str, ...]) -> tuple[str, ...]:
        """The inbox's and outbox's own privileges (RFC 6638 §6)."""
        return box_privileges(path, granted)

    def services(self) -> Mapping[ServiceKey[Any], Any]:
        """The scheduler, for the handlers."""
        return {SCHEDULER_KEY: self.scheduler}

    async def check_props(
        self, ctx: Context, res: Resource, props: Mapping[str, bytes]
    ) -> Mapping[str, str]:
        """schedule-calendar-transp is opaque or transparent, on a calendar; the default
        calendar of invitations is an existing calendar of the inbox's owner; the outbox
        keeps no properties."""
        found = refused(self.prefix, res.path, props)
        value = props.get(DEFAULT_CALENDAR_URL)
        if value is not None and DEFAULT_CALENDAR_URL not in found:
            target = default_target(self.prefix, res.path, value)
            there = await self.store.stat(target) if target is not None else None
            if there is None or not there.is_collection:
                found[DEFAULT_CALENDAR_URL] = (
                    "{urn:ietf:params:xml:ns:caldav}valid-schedule-default-calendar-URL"
                )
        return found

    def subscribe(self, bus: EventBus, tree: Tree) -> None:
        """Implicit scheduling follows the changes this process makes."""
        bus.subscribe(tree.prefix, self.scheduler.on_changes)

    async def open(self, tree: Tree) -> None:
        """Open the lock file of the copies' updates."""
        await offload(self.mutexes.open)

    async def close(self) -> None:
        """Stop the mailer, close the records and the lock file."""
        self.mailer.close()
        await self.records.close()
        self.mutexes.close()
