"""MKCALENDAR (RFC 4791 §5.3.1) and extended MKCOL (RFC 5689) for calendar collections."""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from davserver.backends.base import AlreadyExists
from davserver.dav.body import read_xml
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.locking import require_unlocked
from davserver.dav.proppatch import serialize_property
from davserver.ical.timezone import timezone_problem
from davserver.runtime.threads import offload

from .names import COMPONENTS, c, dav
from .props import SUPPORTED_COMPONENTS
from .store.layout import place


def props_to_set(root: etree._Element, container: str) -> dict[str, bytes]:
    """The properties of ``<container><D:set><D:prop>...`` as dead properties to store."""
    if root.tag != container:
        raise DAVError(400, f"the body is not a {container}")
    props: dict[str, bytes] = {}
    for prop in root.iterfind(f"{dav('set')}/{dav('prop')}/*"):
        if not isinstance(prop.tag, str) or prop.tag == dav("resourcetype"):
            continue
        props[prop.tag] = serialize_property(prop)
    return props


def parse_mkcalendar(root: etree._Element | None) -> dict[str, bytes]:
    """The properties a MKCALENDAR body sets (none without a body)."""
    return props_to_set(root, c("mkcalendar")) if root is not None else {}


def parse_mkcol(root: etree._Element | None) -> dict[str, bytes]:
    """The properties an extended MKCOL body sets (none without a body, a plain MKCOL in a
    calendar home); 403 unless its resourcetype makes a calendar, the only collection
    a calendar tree holds."""
    if root is None:
        return {}
    props = props_to_set(root, dav("mkcol"))
    types = root.find(f"{dav('set')}/{dav('prop')}/{dav('resourcetype')}")
    if types is None or types.find(c("calendar")) is None:
        refusal = "only calendar collections can be made here"
        raise DAVError(403, refusal, condition="valid-resourcetype")
    return props


def check_values(props: dict[str, bytes]) -> None:
    """RFC 4791 §5.3.1.1: a calendar-timezone must be an iCalendar object with a single
    VTIMEZONE, and the component set must name components that calendars hold."""
    timezone = props.get(c("calendar-timezone"))
    if timezone is not None:
        problem = timezone_problem("".join(etree.fromstring(timezone).itertext()))
        if problem is not None:
            raise DAVError(403, f"calendar-timezone: {problem}", condition=c("valid-calendar-data"))
    components = props.get(SUPPORTED_COMPONENTS)
    if components is not None:
        root = etree.fromstring(components)
        names = [el.get("name", "").upper() for el in root.iter(c("comp"))]
        if not names or any(name not in COMPONENTS for name in names):
            raise DAVError(
                403, f"unsupported components {names}", condition=c("supported-calendar-component")
            )


def _taken(ctx: Context) -> DAVError:
    """Something is where the collection would be: 403 resource-must-be-null for
    MKCALENDAR (RFC 4791 §5.3.1.1), 405 for MKCOL (RFC 4918 §9.3.1)."""
    status = 403 if ctx.request.method == "MKCALENDAR" else 405
    return DAVError(status, "something already exists there", condition="resource-must-be-null")


async def _create(ctx: Context, props: dict[str, bytes]) -> web.StreamResponse:
    path, storage = ctx.path, ctx.storage
    where = place(path)
    if where.kind != "calendar":
        raise DAVError(
            403, "calendars are created inside a calendar home",
            condition=c("calendar-collection-location-ok"),
        )  # fmt: skip
    if await storage.stat(path) is not None:
        raise _taken(ctx)
    home = await storage.stat(path.rpartition("/")[0])
    if home is None:
        raise DAVError(409, "the calendar home does not exist")
    protected = ctx.features.protected
    refused = [name for name in props if name in protected and name != SUPPORTED_COMPONENTS]
    if refused:
        raise DAVError(
            403, f"cannot set {refused[0]}", condition="cannot-modify-protected-property"
        )
    # Parsing a VTIMEZONE reads the system's zone database: off the event loop.
    await offload(check_values, props)
    require_unlocked(ctx, path, member=True)
    message = f"{ctx.request.method} /{path}"
    try:
        async with storage.change(author=ctx.author, message=message) as change:
            await change.mkcol(path)
            await change.set_props(path, props)
    except AlreadyExists as exc:  # made meanwhile
        raise _taken(ctx) from exc
    return web.Response(status=201, headers={"Cache-Control": "no-cache"})


async def mkcalendar(ctx: Context) -> web.StreamResponse:
    """Create a calendar with the properties the body sets."""
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    return await _create(ctx, parse_mkcalendar(root))


async def mkcol(ctx: Context) -> web.StreamResponse:
    """Extended MKCOL: a calendar when the body's resourcetype says so, or (no body) a
    plain MKCOL inside a calendar home, which can only hold calendars."""
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    return await _create(ctx, parse_mkcol(root))
