"""PROPPATCH (RFC 4918 §9.2): all instructions succeed together or none does."""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from davserver.backends.base import DeadProps, FileChange

from . import checksums, multistatus
from .body import read_xml
from .conditions import parse_http_date
from .context import Context
from .errors import DAVError
from .locking import require_unlocked
from .paths import href
from .preconditions import expectation
from .props import propstat
from .write import client_mtime
from .xml import empty_element

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
WIN32_MTIME = "{urn:schemas-microsoft-com:}Win32LastModifiedTime"
"""Windows Explorer's modification time (an HTTP date): kept as a property, and the
file's modification time is set from it."""
OC_MTIME = "{DAV:}lastmodified"
"""ownCloud's way to set a modification time (seconds since 1970; rclone's
``propset_mtime``): sets the file's time, is not kept as a property."""
NOT_KEPT = frozenset({OC_MTIME, checksums.CHECKSUMS})
"""Names a PROPPATCH accepts without keeping them: ownCloud clients send the checksums
they know with a modification time; the server has its own."""


def _text(value: bytes) -> str:
    return "".join(etree.fromstring(value).itertext()).strip()


def requested_mtime(ops: list[tuple[str, bytes | None]]) -> float | None:
    """The modification time a PROPPATCH sets, if any (400 when it is not a time)."""
    mtime: float | None = None
    for name, value in ops:
        if value is None or name not in (WIN32_MTIME, OC_MTIME):
            continue
        text = _text(value)
        if name == OC_MTIME:
            mtime = client_mtime(text)
        else:
            found = parse_http_date(text)
            if found is None:
                raise DAVError(400, f"Win32LastModifiedTime {text!r} is not an HTTP date")
            mtime = found
    return mtime


def serialize_property(prop: etree._Element) -> bytes:
    """A property element as stored: exact, with an inherited xml:lang made explicit."""
    if prop.get(_XML_LANG) is None:
        for ancestor in prop.iterancestors():
            lang = ancestor.get(_XML_LANG)
            if lang is not None:
                prop.set(_XML_LANG, lang)
                break
    prop.tail = None
    return etree.tostring(prop)


def _condition(name: str) -> str:
    """A precondition element: a DAV: local name, or a Clark name of another namespace."""
    return empty_element(name) if name.startswith("{") else f"<D:{name}/>"


def parse_update(root: etree._Element | None) -> list[tuple[str, bytes | None]]:
    """The instructions of a propertyupdate body, in order: (name, value or None to remove)."""
    if root is None or root.tag != "{DAV:}propertyupdate":
        raise DAVError(400, "the body is not a DAV:propertyupdate")
    ops: list[tuple[str, bytes | None]] = []
    for instruction in root:
        if instruction.tag not in ("{DAV:}set", "{DAV:}remove"):
            continue
        for prop_el in instruction.iterchildren("{DAV:}prop"):
            for prop in prop_el:
                if isinstance(prop.tag, str):
                    is_set = instruction.tag == "{DAV:}set"
                    ops.append((prop.tag, serialize_property(prop) if is_set else None))
    if not ops:
        raise DAVError(400, "propertyupdate names no property")
    return ops


async def _keep_checksums(ctx: Context, old: str, new: str) -> None:
    """Checksums known of a file stay its own when only its time changed (and with it,
    on the filesystem, its ETag)."""
    service = ctx.tree.services.get(checksums.SERVICE)
    if service is None or old == new:
        return
    known = (await service.store.get(service.mount, [old])).get(old)
    if known is not None:
        await service.remember(new, known)


async def proppatch(ctx: Context) -> web.StreamResponse:
    """Set and remove dead properties; refuse protected live ones with 403 and the rest 424."""
    path = ctx.path
    ops = parse_update(await read_xml(ctx.request, ctx.settings.max_xml_size))
    res = await ctx.storage.stat(path, dead_props=True)
    if res is None:
        return web.Response(status=404, text="404 Not Found\n")
    require_unlocked(ctx, path)
    names = list(dict.fromkeys(name for name, _ in ops))
    protected = ctx.features.protected
    refused = {n: "cannot-modify-protected-property" for n in names if n in protected}
    if not refused:
        setting = {n: v for n, v in ops if v is not None}
        refused = await ctx.features.check_props(ctx, res, setting)
    if refused:
        by_condition: dict[str, list[str]] = {}
        for name, cond in refused.items():
            by_condition.setdefault(cond, []).append(name)
        body = "".join(
            propstat("".join(map(empty_element, group)), 403, f"<D:error>{_condition(c)}</D:error>")
            for c, group in by_condition.items()
        )
        others = [n for n in names if n not in refused]
        if others:
            body += propstat("".join(empty_element(n) for n in others), 424)
    else:
        mtime = requested_mtime(ops)
        kept = [(name, value) for name, value in ops if name not in NOT_KEPT]

        def update(current: DeadProps) -> DeadProps:
            # Applied to the properties there at the moment of the write: two PROPPATCHes
            # of different properties both keep theirs.
            props = dict(current)
            for name, value in kept:
                if value is None:
                    props.pop(name, None)
                else:
                    props[name] = value
            return props

        message = f"PROPPATCH /{path}"
        async with ctx.storage.change(author=ctx.author, message=message) as change:
            expect = expectation(ctx, path)
            if kept or mtime is None:
                await change.set_props(path, update, expect=expect)
            if mtime is not None and isinstance(change, FileChange):
                touched = await change.set_mtime(path, mtime, expect=expect)
                await _keep_checksums(ctx, res.etag, touched.etag)
        body = propstat("".join(empty_element(n) for n in names), 200)
    link = href(ctx.prefix, path, res.is_collection)
    return multistatus.complete(f"<D:response><D:href>{link}</D:href>{body}</D:response>")
