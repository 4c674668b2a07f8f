"""Safe XML parsing of request bodies and the small pieces of XML the responses are made of.

Responses are written as text, not built as trees: that is what keeps a PROPFIND over
thousands of members fast and lets it stream.
"""

from __future__ import annotations

import functools
from http import HTTPStatus

from lxml import etree

DAV = "DAV:"
XML_CONTENT_TYPE = "application/xml"
XML_DECL = '<?xml version="1.0" encoding="utf-8"?>\n'
# CalDAV's namespaces are declared up front so its properties can use the C and CS prefixes.
MULTISTATUS_OPEN = (
    XML_DECL + '<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'
    ' xmlns:CS="http://calendarserver.org/ns/">'
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
_MAX_DEPTH = 64


class XMLError(ValueError):
    """The body is not XML davserver accepts; the message says why."""


def parse(data: bytes) -> etree._Element:
    """Parse a request body; refuse DTDs, entities and absurd nesting."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XMLError(f"malformed XML: {exc}") from exc
    doc = root.getroottree().docinfo
    if doc.doctype or doc.internalDTD is not None:
        raise XMLError("DOCTYPE declarations are not accepted")
    depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        if not isinstance(el.tag, str):
            raise XMLError("entity references are not accepted")
        depth += 1
        if depth > _MAX_DEPTH:
            raise XMLError(f"XML nested deeper than {_MAX_DEPTH} levels")
    return root


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
