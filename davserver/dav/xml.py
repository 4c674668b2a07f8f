"""Safe XML parsing of request bodies and the small pieces of XML the responses are made of.

Responses are written as text, not built as trees: that is what keeps a PROPFIND over
thousands of members fast and lets it stream.
"""

from __future__ import annotations

import codecs
import functools
import re
from http import HTTPStatus

from lxml import etree

from davserver.runtime.threads import offload

DAV = "DAV:"
XML_CONTENT_TYPE = "application/xml"
XML_DECL = '<?xml version="1.0" encoding="utf-8"?>\n'
# CalDAV's and CardDAV's namespaces are declared up front so their properties can use the
# C, CS and CR prefixes.
MULTISTATUS_OPEN = (
    XML_DECL + '<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'
    ' xmlns:CS="http://calendarserver.org/ns/" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
)
MULTISTATUS_CLOSE = "</D:multistatus>\n"

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)
MAX_DEPTH = 64
# True when some element lies deeper than MAX_DEPTH: libxml2 answers it several times faster
# than a walk of the tree in Python (1 MiB of empty elements: 7 ms instead of 50).
_TOO_DEEP = etree.XPath("boolean(" + "/*" * (MAX_DEPTH + 1) + ")")

# Byte order marks, and (XML 1.0 Appendix F) how a document in a two- or four-byte encoding
# without one begins: with "<".
_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_WIDE_STARTS = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
# The names (as Python's codecs spell them) an XML declaration may give each of those.
_DECLARABLE = {
    "utf-8": {"utf-8"},
    "utf-16-le": {"utf-16", "utf-16-le"},
    "utf-16-be": {"utf-16", "utf-16-be"},
    "utf-32-le": {"utf-32", "utf-32-le"},
    "utf-32-be": {"utf-32", "utf-32-be"},
}
_WIDE = set().union(*_DECLARABLE.values()) - {"utf-8"}
# The encoding of an XML declaration (EncName of XML 1.0 §4.3.3; libxml2 refuses others).
_DECLARATION = re.compile(
    r"<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._-]{0,39})[\"']"
)
# An XML declaration is short; what lies beyond this many bytes is not looked at.
_DECLARATION_BYTES = 512


class XMLError(ValueError):
    """The body is not XML davserver accepts; the message says why."""


def body_encoding(data: bytes) -> str:
    """The encoding of an XML body as Python's codecs name it, from its byte order mark, the
    layout of its first bytes and its XML declaration ("utf-8" when none says anything).
    XMLError when they contradict each other (UTF-8 bytes declared UTF-16, a UTF-16 byte
    order mark on a document declared UTF-8) or name an encoding Python does not know."""
    physical, start = None, 0
    for mark, name in _BOMS:
        if data.startswith(mark):
            physical, start = name, len(mark)
            break
    else:
        physical = next((name for lead, name in _WIDE_STARTS if data.startswith(lead)), None)
    head = data[start : start + _DECLARATION_BYTES].decode(physical or "latin-1", "ignore")
    declaration = _DECLARATION.match(head)
    if declaration is None:
        return physical or "utf-8"
    label = declaration[1]
    try:
        declared = codecs.lookup(label).name
    except LookupError as exc:
        raise XMLError(f"unsupported encoding {label!r}") from exc
    if physical is None:
        if declared in _WIDE:
            raise XMLError(f"declared encoding {label!r}, but the bytes are not {label}")
        return declared
    if declared not in _DECLARABLE[physical]:
        raise XMLError(f"declared encoding {label!r}, but the body is {physical}")
    return physical


def parse(data: bytes) -> etree._Element:
    """Parse a request body; refuse DTDs (so entities), absurd nesting and an encoding that
    contradicts itself. Any encoding libxml2 and Python both know is accepted (RFC 4918
    §8.2: UTF-8 and UTF-16 at least)."""
    body_encoding(data)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XMLError(f"malformed XML: {exc}") from exc
    # Without a DTD no entity is declared, so none can be referred to (libxml2 refuses an
    # undeclared one): refusing the DOCTYPE refuses entities, internal and external.
    doc = root.getroottree().docinfo
    if doc.doctype or doc.internalDTD is not None:
        raise XMLError("DOCTYPE declarations are not accepted")
    if _TOO_DEEP(root):
        raise XMLError(f"XML nested deeper than {MAX_DEPTH} levels")
    return root


ON_LOOP = 64 << 10
"""Request bodies up to this size are parsed on the event loop (a millisecond or two);
larger ones in a worker thread, so that a hostile megabyte does not hold up the other
requests for the 20 ms or more its parse takes."""


async def parse_request(data: bytes) -> etree._Element:
    """:func:`parse`, off the event loop when ``data`` is over :data:`ON_LOOP` bytes."""
    return parse(data) if len(data) <= ON_LOOP else await offload(parse, data)


def escape(text: str) -> str:
    """Escape text for an XML element's content."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attr(text: str) -> str:
    """Escape text for a double-quoted attribute value."""
    return escape(text).replace('"', "&quot;")


def split_clark(name: str) -> tuple[str, str]:
    """``{ns}local`` → (ns, local); a name without a namespace has ns ``""``."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def empty_element(name: str) -> str:
    """An empty element for a Clark name, declaring its namespace when it is not DAV:."""
    ns, local = split_clark(name)
    if ns == DAV:
        return f"<D:{local}/>"
    if not ns:
        return f'<{local} xmlns=""/>'
    return f'<X:{local} xmlns:X="{escape_attr(ns)}"/>'


def error_body(condition: str, inner: str = "") -> bytes:
    """A ``DAV:error`` body naming one precondition or postcondition."""
    name = condition if condition.startswith("{") else "{DAV:}" + condition
    ns, local = split_clark(name)
    if ns == DAV:
        el = f"<D:{local}>{inner}</D:{local}>" if inner else f"<D:{local}/>"
    else:
        el = f'<X:{local} xmlns:X="{escape_attr(ns)}">{inner}</X:{local}>'
    return (XML_DECL + f'<D:error xmlns:D="DAV:">{el}</D:error>\n').encode()


@functools.lru_cache(maxsize=64)
def status_line(code: int) -> str:
    """``HTTP/1.1 404 Not Found`` for a multistatus ``<D:status>``."""
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {code} {phrase}".rstrip()
