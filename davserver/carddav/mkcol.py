"""Extended MKCOL (RFC 5689, RFC 6352 §6.3.1) of address books."""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from davserver.backends.base import AlreadyExists
from davserver.caldav.mkcalendar import props_to_set
from davserver.caldav.store.layout import ADDRESSBOOKS, place
from davserver.dav.body import read_xml
from davserver.dav.context import Context
from davserver.dav.errors import DAVError
from davserver.dav.locking import require_unlocked

from .names import cr

LOCATION_OK = cr("addressbook-collection-location-ok")


def parse_mkcol(root: etree._Element | None) -> dict[str, bytes]:
    """The properties an extended MKCOL body sets (none without a body: a plain MKCOL in
    an address-book home, which holds only address books); 403 unless its resourcetype
    makes an address book."""
    if root is None:
        return {}
    props = props_to_set(root, "{DAV:}mkcol")
    types = root.find("{DAV:}set/{DAV:}prop/{DAV:}resourcetype")
    if types is None or types.find(cr("addressbook")) is None:
        raise DAVError(403, "only address books can be made here", condition="valid-resourcetype")
    return props


async def mkcol(ctx: Context) -> web.StreamResponse | None:
    """Create an address book with the properties the body sets; None outside the
    address books."""
    path, storage = ctx.path, ctx.storage
    where = place(path)
    if where.space != ADDRESSBOOKS:
        return None
    root = await read_xml(ctx.request, ctx.settings.max_xml_size)
    if where.kind != "addressbook":
        # Homes exist already, and address books hold no collections (RFC 6352 §5.2).
        raise DAVError(403, "address books are created in a home", condition=LOCATION_OK)
    props = parse_mkcol(root)
    if await storage.stat(path) is not None:
        raise DAVError(405, "something already exists there", condition="resource-must-be-null")
    if await storage.stat(path.rpartition("/")[0]) is None:
        raise DAVError(409, "the address-book home does not exist")
    refused = [name for name in props if name in ctx.features.protected]
    if refused:
        raise DAVError(
            403, f"cannot set {refused[0]}", condition="cannot-modify-protected-property"
        )
    require_unlocked(ctx, path, member=True)
    try:
        async with storage.change(author=ctx.author, message=f"MKCOL /{path}") as change:
            await change.mkcol(path)
            if props:
                await change.set_props(path, props)
    except AlreadyExists as exc:  # made meanwhile
        raise DAVError(
            405, "something already exists there", condition="resource-must-be-null"
        ) from exc
    return web.Response(status=201, headers={"Cache-Control": "no-cache"})
