"""The XML of locking: the LOCK request body, the Timeout header, and the ``activelock``
and ``supportedlock`` elements of answers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from xml.parsers import expat

from lxml import etree

from .errors import DAVError
from .paths import href
from .xml import body_encoding, escape

if TYPE_CHECKING:
    from davserver.locks.manager import Lock, Scope

SUPPORTEDLOCK = (
    "<D:supportedlock>"
    "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockentry>"
    "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockentry>"
    "</D:supportedlock>"
)
_TAG_NAME_END = re.compile(rb"[\s/>]")
# A start tag (XML 1.0 §3.1; attribute values may hold ">"), its group 1 "/" when empty.
_START_TAG = re.compile(rb"""<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*(/?)>""")


def parse_lockinfo(root: etree._Element) -> Scope:
    """The scope a ``DAV:lockinfo`` body asks for; 400 unless it asks a write lock."""
    if root.tag != "{DAV:}lockinfo":
        raise DAVError(400, "the LOCK body is not a DAV:lockinfo")
    scope = root.find("{DAV:}lockscope")
    locktype = root.find("{DAV:}locktype")
    if scope is None or locktype is None or locktype.find("{DAV:}write") is None:
        raise DAVError(400, "lockinfo needs a lockscope and a write locktype")
    if scope.find("{DAV:}exclusive") is not None:
        return "exclusive"
    if scope.find("{DAV:}shared") is not None:
        return "shared"
    raise DAVError(400, "lockscope is neither exclusive nor shared")


def owner_element(body: bytes, root: etree._Element) -> bytes:
    """The ``DAV:owner`` element of a lockinfo body exactly as the client wrote it, with the
    namespace declarations it inherits added so that it stands on its own ("" if none)."""
    owner = root.find("{DAV:}owner")
    if owner is None:
        return b""
    span = _element_span(body)
    if span is None:
        return etree.tostring(owner)
    start, end = span
    raw = body[start:end]
    parent_ns = root.nsmap
    declared_here = {p for p, uri in owner.nsmap.items() if parent_ns.get(p) != uri}
    inherited = b"".join(
        (b' xmlns="' if p is None else b" xmlns:" + p.encode() + b'="')
        + escape(uri).replace('"', "&quot;").encode()
        + b'"'
        for p, uri in parent_ns.items()
        if p not in declared_here
    )
    cut = _TAG_NAME_END.search(raw, 1)
    assert cut is not None
    return raw[: cut.start()] + inherited + raw[cut.start() :]


def _element_span(body: bytes) -> tuple[int, int] | None:
    """Byte offsets of the DAV:owner child of the root in a UTF-8 body, or None."""
    if body_encoding(body) not in ("utf-8", "ascii"):
        return None
    parser = expat.ParserCreate(namespace_separator=" ")
    depth = 0
    span: list[int] = []

    def start(name: str, _attrs: object) -> None:
        nonlocal depth
        depth += 1
        if depth == 2 and name == "DAV: owner" and not span:
            span.append(parser.CurrentByteIndex)

    def end(name: str) -> None:
        nonlocal depth
        if depth == 2 and name == "DAV: owner" and len(span) == 1:
            span.append(parser.CurrentByteIndex)
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        return None
    if len(span) != 2:
        return None
    begin, end_tag = span
    tag = _START_TAG.match(body, begin)
    if tag is None:
        return None
    if tag[1]:  # <D:owner/>: expat's end event comes after the tag, not at an end tag
        return begin, tag.end()
    return begin, body.index(b">", end_tag) + 1


_SECONDS = re.compile(r"second-([0-9]+)\Z")


def parse_timeout(header: str | None, default: int, maximum: int) -> int:
    """Seconds a lock should last: the first usable value of a Timeout header, capped.
    Values it cannot use (RFC 4918 §10.7 lets a server ignore them) are skipped."""
    for part in (header or "").split(","):
        value = part.strip().lower()
        if value == "infinite":
            return maximum
        seconds = _SECONDS.match(value)
        if seconds:  # 19 digits are past any maximum: more are not worth converting
            return max(1, min(int(seconds[1].lstrip("0")[:19] or "0"), maximum))
    return min(default, maximum)


def activelock(lock: Lock, prefix: str) -> str:
    """One ``DAV:activelock`` element."""
    owner = lock.owner.decode("utf-8", "replace") if lock.owner else ""
    root = href(prefix, lock.root, lock.collection)
    return (
        f"<D:activelock><D:locktype><D:write/></D:locktype>"
        f"<D:lockscope><D:{lock.scope}/></D:lockscope><D:depth>{lock.depth}</D:depth>"
        f"{owner}<D:timeout>Second-{lock.remaining()}</D:timeout>"
        f"<D:locktoken><D:href>{escape(lock.token)}</D:href></D:locktoken>"
        f"<D:lockroot><D:href>{root}</D:href></D:lockroot></D:activelock>"
    )


def lockdiscovery(locks: list[Lock], prefix: str) -> str:
    """The ``DAV:lockdiscovery`` property listing these locks."""
    if not locks:
        return "<D:lockdiscovery/>"
    inner = "".join(activelock(lock, prefix) for lock in locks)
    return f"<D:lockdiscovery>{inner}</D:lockdiscovery>"
