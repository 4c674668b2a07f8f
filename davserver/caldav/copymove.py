"""COPY and MOVE in a CalDAV tree: the WebDAV methods, after the preconditions RFC 4791
sets for them (§5.3.2.1 for calendar objects, calendar-collection-location-ok of
§5.3.1.1 for calendars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from davserver.backends.calendar import Place, place
from davserver.dav import copymove
from davserver.dav.errors import DAVError
from davserver.dav.paths import href

from .names import C, c
from .put import supported_components

if TYPE_CHECKING:
    from .mount import CalDavMount


async def copy_or_move(mount: CalDavMount, request: web.Request, src: str) -> web.StreamResponse:
    """Refuse what would put a calendar or a calendar object where it cannot be, or break
    the destination calendar's rules; then copy or move as WebDAV does."""
    dst = copymove.destination(mount, request)
    res = await mount.storage.stat(src)
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
            mount.check_owner(request, dst, write=True)  # before the destination is looked at
            await _check_item(mount, s, d, dst, moving=request.method == "MOVE")
        elif s.kind != d.kind:
            raise DAVError(403, f"a {s.kind} cannot be copied or moved to a {d.kind}")
    return await copymove.copy_or_move(mount, request, src)


async def _check_item(mount: CalDavMount, s: Place, d: Place, dst: str, *, moving: bool) -> None:
    """The destination calendar must accept the object's component and UID (which a
    moved object leaves behind, a copied one keeps)."""
    assert s.calendar is not None and d.calendar is not None
    storage = mount.storage
    calendar_path = dst.rpartition("/")[0]
    calendar = await storage.stat(calendar_path, dead_props=True)
    if calendar is None or not calendar.is_collection:
        return  # the WebDAV method answers 409
    item = (await storage.refresh(s.calendar)).get(s.name or "")
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
    targets = await storage.refresh(d.calendar)
    for name, other in targets.items():
        if other.uid is None:
            continue
        itself = moving and d.calendar == s.calendar and name == s.name
        overwritten = name == d.name
        if (other.uid == item.uid and not itself and not overwritten) or (
            overwritten and other.uid != item.uid
        ):
            link = href(mount.prefix, f"{calendar_path}/{name}", False)
            raise DAVError(
                409, f"UID {item.uid} conflicts with {name}",
                condition=f"{{{C}}}no-uid-conflict", inner=f"<D:href>{link}</D:href>",
            )  # fmt: skip
