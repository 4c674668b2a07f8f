"""COPY and MOVE in a CalDAV tree: the WebDAV methods, after the preconditions RFC 4791
sets for them (§5.3.2.1 for calendar objects, calendar-collection-location-ok of
§5.3.1.1 for calendars)."""

from __future__ import annotations

from aiohttp import web

from davserver.dav import copymove
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.paths import href

from .names import C, c
from .put import supported_components
from .services import calendars
from .store.layout import Place, place


async def copy_or_move(ctx: Context) -> web.StreamResponse:
    """Refuse what would put a calendar or a calendar object where it cannot be, or break
    the destination calendar's rules; then copy or move as WebDAV does."""
    src = ctx.path
    dst = copymove.destination(ctx)
    res = await ctx.storage.stat(src)
    if res is not None and dst != src:
        s, d = place(src), place(dst)
        if s.kind == "calendar":
            if d.kind != "calendar":
                raise DAVError(
                    403, "a calendar can only go into a calendar home",
                    condition=c("calendar-collection-location-ok"),
                )  # fmt: skip
        elif s.kind == "item" and not res.is_collection:
            if d.kind != "item":
                raise DAVError(403, "calendar objects belong in a calendar collection")
            ctx.check_owner(dst, write=True)  # before the destination is looked at
            # RFC 4918's Overwrite comes before the calendar's rules: a taken destination
            # with Overwrite: F is 412 whatever it holds.
            overwrite = ctx.request.headers.get("Overwrite", "T").strip().upper() != "F"
            if not overwrite and await ctx.storage.stat(dst) is not None:
                raise DAVError(412, "the destination exists and Overwrite is F")
            await _check_item(ctx, s, d, dst, moving=ctx.request.method == "MOVE")
        elif s.kind != d.kind:
            raise DAVError(403, f"a {s.kind} cannot be copied or moved to a {d.kind}")
    return await copymove.copy_or_move(ctx)


async def _check_item(ctx: Context, s: Place, d: Place, dst: str, *, moving: bool) -> None:
    """The destination calendar must accept the object's component and UID (which a
    moved object leaves behind, a copied one keeps)."""
    assert s.calendar is not None and d.calendar is not None
    store = calendars(ctx)
    calendar_path = dst.rpartition("/")[0]
    calendar = await store.stat(calendar_path, dead_props=True)
    if calendar is None or not calendar.is_collection:
        return  # the WebDAV method answers 409
    item = (await store.refresh(s.calendar)).get(s.name or "")
    if item is None or item.uid is None or item.component is None:
        raise DAVError(
            403, "the source is not a calendar object",
            condition=c("valid-calendar-object-resource"),
        )  # fmt: skip
    if item.component not in supported_components(calendar.dead_props):
        raise DAVError(
            403, f"{item.component} is not accepted there",
            condition=c("supported-calendar-component"),
        )  # fmt: skip
    targets = await store.refresh(d.calendar)
    for name, other in targets.items():
        if other.uid is None:
            continue
        itself = moving and d.calendar == s.calendar and name == s.name
        overwritten = name == d.name
        if (other.uid == item.uid and not itself and not overwritten) or (
            overwritten and other.uid != item.uid
        ):
            link = href(ctx.prefix, f"{calendar_path}/{name}", False)
            # Replacing an object of another UID in another calendar by a move is refused
            # outright (403); the other conflicts are the state of the calendar (409).
            status = 403 if overwritten and moving and d.calendar != s.calendar else 409
            raise DAVError(
                status, f"UID {item.uid} conflicts with {name}",
                condition=f"{{{C}}}no-uid-conflict", inner=f"<D:href>{link}</D:href>",
            )  # fmt: skip
