"""The index follows the tree's change events: an item written with a summary is taken in
at once, a deleted item, collection or home is dropped, a collection's PROPPATCH moves
its ctag, and what cannot be followed item by item (a COPY or MOVE into a collection)
marks the collection stale, so that its next refresh lists it.

CalDAV follows the calendar space and CardDAV the address-book space of one store, each
with :func:`follow` (the events of the other space are the other feature's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from davserver import vcard
from davserver.ical.summary import Summary

from .items import Item
from .layout import COLLECTION_KINDS, MADE_WITH_HOME, CalendarStore, Place, item_of, place

if TYPE_CHECKING:
    from davserver.events import ChangeEvent


async def follow(store: CalendarStore, space: str, events: Sequence[ChangeEvent]) -> None:
    """Bring the index of ``store`` in line with the events of paths in ``space``. Items
    written one after another into one collection (a scan's finds come thousands at a
    time) reach the index as one update."""
    index = store.index
    collection_kind = COLLECTION_KINDS[space]
    written: dict[str, Item] = {}
    into = ""

    async def flush() -> None:
        if written:
            try:
                await index.update(into, dict(written), [])
            except BaseException:
                # The change feed leaves out this process's own writes: the next
                # refresh lists the collection instead, and finds the items then.
                store.mark_stale(into)
                raise
            written.clear()

    for event in events:
        where = place(event.path)
        if where.space != space:
            continue
        if (
            where.kind == "item"
            and where.collection
            and where.name
            and event.kind not in ("moved", "props", "deleted")
            and isinstance(event.note, Summary | vcard.Summary)
            and event.resource is not None
        ):
            if where.collection != into:
                await flush()
                into = where.collection
            written.pop(where.name, None)  # its latest write counts, in its place
            written[where.name] = item_of(event.resource, event.note)
            continue
        await flush()
        if event.kind == "moved":
            await _forget(store, where)
            if event.to is not None:
                _touch(store, place(event.to))
        elif where.kind == "item" and where.collection and where.name:
            if event.kind == "props":
                continue  # the index keeps no dead properties
            if event.kind == "deleted":
                store.bodies.drop(f"{where.collection}/{where.name}")
                await index.update(where.collection, {}, [where.name])
            else:
                store.mark_stale(where.collection)
        elif event.kind == "deleted":
            await _forget(store, where)
        elif where.kind == collection_kind and where.collection and event.kind == "props":
            if event.note is not MADE_WITH_HOME:
                await index.update(where.collection, {}, [], touched=True)
        else:
            _touch(store, where)
    await flush()


async def _forget(store: CalendarStore, where: Place) -> None:
    """What the index knew of a deleted (or moved away) collection or home."""
    if where.kind in COLLECTION_KINDS.values() and where.collection:
        await store.index.forget(where.collection)
    elif where.kind == "home" and where.user and where.inner:
        await store.index.forget_home(where.inner)
    elif where.kind in ("item", "other") and where.collection:
        store.mark_stale(where.collection)


def _touch(store: CalendarStore, where: Place) -> None:
    """A collection (or something in it) appeared by a copy or a move: list it again."""
    if where.collection:
        store.mark_stale(where.collection)


def uncache(store: CalendarStore, space: str, events: Sequence[ChangeEvent]) -> None:
    """Of the changes another process made in ``space`` (it wrote the index), drop what
    this process holds in memory: the items involved, or the whole collections when more
    than items changed, are read again when asked."""
    index = store.index
    for event in events:
        for path in (event.path, event.to):
            where = place(path) if path is not None else None
            if where is None or where.space != space:
                continue
            if where.kind == "item" and where.collection and where.name and not event.is_collection:
                index.uncache(where.collection, (where.name,))
            elif where.collection:
                index.uncache(where.collection)
            elif where.kind == "home" and where.inner:
                index.uncache_home(where.inner)
