"""Property tests of the request parsers: whatever an XML body, an If header or a path
holds, the parsers give a result or refuse it with a client error (a DAVError of status
4xx, an XMLError), never another exception.

Inputs are fully random (bytes, text) and near-valid: trees of the DAV and CalDAV
vocabularies with random names, namespaces, attributes and text, serialized in several
encodings (with and without a byte order mark and an XML declaration, sometimes lying);
If headers built from the RFC 4918 §10.4 grammar; paths of tricky segments. Each is then
mutated (a few insertions, deletions and replacements of characters that matter)."""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from davserver.backends.filesystem import FilesystemStorage
from davserver.backends.git_layout import RESERVED as GIT_RESERVED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from davserver.caldav import calendar_data, filters
from davserver.caldav.freebusy import parse_free_busy
from davserver.caldav.mkcalendar import check_values, parse_mkcalendar, parse_mkcol
from davserver.caldav.names import C
from davserver.caldav.props import parse_sync_token
from davserver.caldav.sync import parse_sync
from davserver.dav import ifheader, xml
from davserver.dav.context import DavSettings
from davserver.dav.core import WebDav
from davserver.dav.deadprops import PROPS_CODEC
from davserver.dav.errors import DAVError
from davserver.dav.lockinfo import owner_element, parse_lockinfo, parse_timeout
from davserver.dav.paths import (
    PLAIN_BATCH,
    destination_raw_path,
    href,
    member_hrefs,
    normalize,
)
from davserver.dav.proppatch import parse_update
from davserver.dav.props import PropRequest, parse_propfind, prop_selection
from davserver.events import LocalBus
from davserver.locks.manager import Lock, LockManager
from davserver.mounts.dav import DavMount
from davserver.state.changelog import SQLiteChangeLog

T = TypeVar("T", str, bytes)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOST = "127.0.0.1:8080"
FS_RESERVED = FilesystemStorage.reserved_names
FS_PREFIXES = FilesystemStorage.reserved_prefixes


def allowed(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when it refuses as a client error; any other exception (or a
    refusal with a status outside 4xx) fails the test."""
    try:
        return fn(*args)
    except DAVError as exc:
        assert 400 <= exc.status < 500, (fn.__name__, exc.status, exc.reason)
    except xml.XMLError:
        pass
    return None


def mutations(base: st.SearchStrategy[T], pieces: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``base`` with up to three insertions, deletions or replacements of ``pieces``."""

    @st.composite
    def mutate(draw: st.DrawFn) -> T:
        value = draw(base)
        for _ in range(draw(st.integers(0, 3))):
            start = draw(st.integers(0, len(value)))
            end = draw(st.integers(start, min(len(value), start + 4)))
            piece = draw(pieces)
            value = draw(
                st.sampled_from(
                    (
                        value[:start] + piece + value[start:],  # insert
                        value[:start] + value[end:],  # delete
                        value[:start] + piece + value[end:],  # replace
                    )
                )
            )
        return value

    return mutate()


# -- XML bodies ------------------------------------------------------------------------------

DAV_NAMES = (
    "propfind", "prop", "allprop", "propname", "include", "propertyupdate", "set", "remove",
    "lockinfo", "lockscope", "locktype", "exclusive", "shared", "write", "owner", "href",
    "sync-collection", "sync-token", "sync-level", "limit", "nresults", "mkcol",
    "resourcetype", "collection", "getetag", "displayname", "expand-property",
)  # fmt: skip
CALDAV_NAMES = (
    "calendar-multiget", "calendar-query", "free-busy-query", "mkcalendar", "filter",
    "comp-filter", "prop-filter", "param-filter", "is-not-defined", "text-match",
    "time-range", "calendar-data", "comp", "allcomp", "allprop", "prop", "expand",
    "limit-recurrence-set", "calendar-timezone", "supported-calendar-component-set",
    "calendar", "calendar-description",
)  # fmt: skip
ROOTS = (
    "{DAV:}propfind", "{DAV:}propertyupdate", "{DAV:}lockinfo", "{DAV:}sync-collection",
    "{DAV:}mkcol", f"{{{C}}}calendar-multiget", f"{{{C}}}calendar-query",
    f"{{{C}}}free-busy-query", f"{{{C}}}mkcalendar",
)  # fmt: skip
NAMESPACES = ("DAV:", C, "http://calendarserver.org/ns/", "urn:x", "")
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NSMAP = {"D": "DAV:", "C": C}

LETTERS = "abcxyzABCXYZ019-_."
NCNAMES = st.text(st.sampled_from(LETTERS), max_size=8).map(lambda s: "x" + s)
# Text of the characters that matter to XML and to the parsers (random text costs more to
# draw and finds nothing more).
XML_TEXT = st.text(st.sampled_from("aZ09 -:;/.<>&'\"=\t\n\ré€😀²"), max_size=20)
# Date-times in the iCalendar UTC form, often valid, often not quite.
UTC_STAMPS = st.builds(
    "{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}{}".format,
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
    st.integers(0, 25), st.integers(0, 61), st.integers(0, 61), st.sampled_from(("Z", "", "z")),
)  # fmt: skip
HREFS = st.sampled_from(
    (
        "/dav/calendars/user/calendar/a.ics", "/dav/%2e%2e/secret", "/dav/a%00b",
        "/dav/a%2fb", "/dav/%ff", "http://[::1/x", "http://127.0.0.1:8080/dav/x.ics",
        "http://elsewhere/dav/x.ics", "//elsewhere/x", "mailto:x@y", "", " /dav/ ",
        "/dav/" + "a" * 300, "/dav/.davprops/self", "/other/x",
    )
)  # fmt: skip
NUMBERS = st.sampled_from(("²", "9" * 5000, "١٢", "-1", "+3", "1e3", " 7 ", "0", "10"))
SYNC_TOKENS = st.builds(
    "http://davserver.org/ns/sync/epoch-{}".format, NUMBERS | st.integers(0, 10**6)
)
ICAL = st.sampled_from(
    (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n"
        "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n"
        "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n",
        "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nEND:VTIMEZONE\r\nEND:VCALENDAR",
        "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:x\r\nBEGIN:STANDARD\r\nDTSTART:x\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR",
        "BEGIN:VCALENDAR\r\nEND:VEVENT\r\n", "BEGIN:VTIMEZONE", "END:VCALENDAR", ":", ";;:\r\n",
    )
)  # fmt: skip
TEXTS = st.none() | XML_TEXT | UTC_STAMPS | HREFS | NUMBERS | SYNC_TOKENS | ICAL
ATTR_NAMES = ("name", "start", "end", "collation", "negate-condition", XML_LANG)
WORDS = (
    "VCALENDAR", "VEVENT", "VTODO", "VJOURNAL", "VALARM", "VFREEBUSY", "VTIMEZONE", "SUMMARY",
    "UID", "DTSTART", "PARTSTAT", "vevent", "VCARD", "i;ascii-casemap", "i;octet",
    "i;unicode-casemap", "yes", "no", "en",
)  # fmt: skip
ATTR_VALUES = st.sampled_from(WORDS) | UTC_STAMPS | XML_TEXT
TAGS = (
    st.sampled_from(DAV_NAMES).map(lambda n: "{DAV:}" + n)
    | st.sampled_from(CALDAV_NAMES).map(lambda n: f"{{{C}}}{n}")
    | st.builds(
        lambda ns, local: f"{{{ns}}}{local}" if ns else local,
        st.sampled_from(NAMESPACES),
        st.sampled_from(DAV_NAMES + CALDAV_NAMES) | NCNAMES,
    )
)
Spec = tuple[str, dict[str, str], str | None, list[Any]]
SPECS: st.SearchStrategy[Spec] = st.recursive(
    st.tuples(TAGS, st.dictionaries(st.sampled_from(ATTR_NAMES), ATTR_VALUES, max_size=2),
              TEXTS, st.just([])),
    lambda children: st.tuples(TAGS, st.just({}), st.none(), st.lists(children, max_size=3)),
    max_leaves=8,
)  # fmt: skip


def build(spec: Spec, parent: etree._Element | None = None) -> etree._Element:
    """The element a generated spec describes (a child of ``parent`` when given)."""
    tag, attrs, text, children = spec
    if parent is None:
        el = etree.Element(tag, attrs, nsmap=NSMAP)
    else:
        el = etree.SubElement(parent, tag, attrs)
    el.text = text
    for child in children:
        build(child, el)
    return el


# Bodies as clients send them, the starting points of the near-valid trees.
D_C = f'xmlns:D="DAV:" xmlns:C="{C}"'
TEMPLATES = {
    "propfind-prop": (
        f"<D:propfind {D_C}><D:prop><D:getetag/><D:displayname/><C:calendar-data/>"
        '<X:x xmlns:X="urn:x"/></D:prop></D:propfind>'
    ),
    "propfind-allprop": (
        f"<D:propfind {D_C}><D:allprop/><D:include><D:lockdiscovery/></D:include></D:propfind>"
    ),
    "propfind-propname": f"<D:propfind {D_C}><D:propname/></D:propfind>",
    "propertyupdate": (
        f'<D:propertyupdate {D_C} xml:lang="en"><D:set><D:prop><X:a xmlns:X="urn:x">v<X:b/>'
        "</X:a><D:displayname>n</D:displayname></D:prop></D:set><D:remove><D:prop><X:c "
        'xmlns:X="urn:x"/></D:prop></D:remove></D:propertyupdate>'
    ),
    "lockinfo": (
        f'<D:lockinfo {D_C} xmlns:Z="urn:z"><D:lockscope><D:exclusive/></D:lockscope>'
        "<D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:a@b</D:href><Z:who>a"
        "</Z:who></D:owner></D:lockinfo>"
    ),
    "calendar-multiget": (
        f"<C:calendar-multiget {D_C}><D:prop><D:getetag/><C:calendar-data><C:comp "
        'name="VCALENDAR"><C:allprop/><C:comp name="VEVENT"><C:prop name="SUMMARY"/>'
        '</C:comp></C:comp><C:expand start="20260101T000000Z" end="20260201T000000Z"/>'
        "</C:calendar-data></D:prop><D:href>/dav/calendars/user/calendar/a.ics</D:href>"
        "<D:href>/dav/b.ics</D:href></C:calendar-multiget>"
    ),
    "calendar-query": (
        f"<C:calendar-query {D_C}><D:prop><D:getetag/><C:calendar-data><C:limit-recurrence-set "
        'start="20260101T000000Z" end="20260201T000000Z"/></C:calendar-data></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
        'start="20260101T000000Z" end="20260201T000000Z"/><C:prop-filter name="ATTENDEE">'
        '<C:text-match collation="i;ascii-casemap" negate-condition="no">ann</C:text-match>'
        '<C:param-filter name="PARTSTAT"><C:is-not-defined/></C:param-filter></C:prop-filter>'
        '<C:comp-filter name="VALARM"><C:time-range start="20260101T000000Z"/></C:comp-filter>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    ),
    "sync-collection": (
        f"<D:sync-collection {D_C}><D:sync-token>http://davserver.org/ns/sync/epoch-3"
        "</D:sync-token><D:sync-level>1</D:sync-level><D:limit><D:nresults>10</D:nresults>"
        "</D:limit><D:prop><D:getetag/></D:prop></D:sync-collection>"
    ),
    "free-busy-query": (
        f'<C:free-busy-query {D_C}><C:time-range start="20260101T000000Z" '
        'end="20260201T000000Z"/></C:free-busy-query>'
    ),
    "mkcalendar": (
        f"<C:mkcalendar {D_C}><D:set><D:prop><D:displayname>Work</D:displayname>"
        "<C:calendar-timezone>BEGIN:VCALENDAR</C:calendar-timezone>"
        '<C:supported-calendar-component-set><C:comp name="VEVENT"/>'
        "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
    ),
    "mkcol": (
        f"<D:mkcol {D_C}><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/>"
        "</D:resourcetype><D:displayname>Home</D:displayname></D:prop></D:set></D:mkcol>"
    ),
}


# What the text of an element, or an attribute, is drawn from when it gets a new value:
# values meant for it more often than not, and any other.
TEXT_SLOTS = {
    "nresults": NUMBERS, "sync-level": NUMBERS, "sync-token": SYNC_TOKENS, "href": HREFS,
    "calendar-timezone": ICAL,
}  # fmt: skip
ATTR_SLOTS = {
    "start": UTC_STAMPS, "end": UTC_STAMPS, "collation": ATTR_VALUES, "name": ATTR_VALUES,
    "negate-condition": st.sampled_from(("yes", "no", "YES", "")),
}  # fmt: skip
EDITS = ("delete", "duplicate", "rename", "child")


def _slot(
    own: st.SearchStrategy[Any] | None, other: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Values from ``own`` half of the time (when there is one), else from ``other``."""
    return other if own is None else st.booleans().flatmap(lambda mine: own if mine else other)


@st.composite
def near_valid_trees(draw: st.DrawFn, template: str) -> etree._Element:
    """A client's body with new values in about half its texts and attributes, and up to
    three elements deleted, duplicated, renamed, or given a random child."""
    root = etree.fromstring(template)
    for el in root.iter():
        if draw(st.booleans()):
            el.text = draw(_slot(TEXT_SLOTS.get(etree.QName(el).localname), TEXTS))
        for name in el.attrib:
            if draw(st.booleans()):
                el.set(name, draw(_slot(ATTR_SLOTS.get(name), ATTR_VALUES)))
    for _ in range(draw(st.integers(0, 3))):
        elements = list(root.iter())
        el = elements[draw(st.integers(0, len(elements) - 1))]
        edit = draw(st.sampled_from(EDITS))
        parent = el.getparent()
        if edit == "delete" and parent is not None:
            parent.remove(el)
        elif edit == "duplicate" and parent is not None:
            parent.insert(parent.index(el), copy.deepcopy(el))
        elif edit == "rename":
            el.tag = draw(TAGS)
        elif edit == "child":
            el.append(build(draw(SPECS)))
    return root


RANDOM_TREES = st.builds(
    lambda root, spec: build((root, *spec[1:])), st.sampled_from(ROOTS) | TAGS, SPECS
)
CODECS = ("utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "ascii", "latin-1")
LABELS = ("utf-8", "UTF-8", "utf8", "utf-16", "UTF-16LE", "utf-32", "us-ascii", "ISO-8859-1",
          "latin1", "x-klingon", "ebcdic-cp-us", "base64", "")  # fmt: skip


def serialize(root: etree._Element, codec: str, label: str | None, bom: bytes = b"") -> bytes:
    """A tree as a body in ``codec``, with an XML declaration naming ``label`` (none when
    None) and a byte order mark (characters the codec lacks become character references)."""
    decl = "" if label is None else f'<?xml version="1.0" encoding="{label}"?>'
    text = decl + etree.tostring(root, encoding="unicode")
    return bom + text.encode(codec, "xmlcharrefreplace")


BYTE_PIECES = st.sampled_from(
    (
        b"<", b">", b"/>", b"</", b"&", b"&amp;", b"&e;", b"&#0;", b"&#x10FFFF;", b"&#xD800;",
        b'"', b"'", b"=", b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xff\xfe", b"]]>",
        b"<![CDATA[x]]>", b"<!--c-->", b"<?pi x?>", b" xmlns=''", b" xmlns:D='DAV:'",
        b" xmlns:D='urn:x'", b"<!DOCTYPE a [<!ENTITY e 'x'>]>", b"<!DOCTYPE a SYSTEM 'x.dtd'>",
        b"<D:prop>", b"</D:prop>", b"<C:comp-filter name='VEVENT'>", b"encoding='utf-16'",
    )
) | st.binary(min_size=1, max_size=3)  # fmt: skip


def bodies(trees: st.SearchStrategy[etree._Element]) -> st.SearchStrategy[bytes]:
    """Bodies of these trees: as clients write them (UTF-8 with or without a declaration,
    UTF-16 with its mark), mutated byte by byte, or with a byte order mark, declaration and
    bytes that may disagree."""
    honest = st.builds(serialize, trees, st.sampled_from(("utf-8", "utf-16")), st.none()) | (
        st.builds(serialize, trees, st.just("utf-8"), st.just("utf-8"))
    )
    lying = st.builds(
        serialize,
        trees,
        st.sampled_from(CODECS),
        st.none() | st.sampled_from(LABELS),
        st.sampled_from((b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")),
    )
    return honest | mutations(honest, BYTE_PIECES) | lying


class _NoLockStore:
    """A lock store that keeps nothing (the mount below only decodes paths)."""

    async def load(self) -> list[Lock]:
        """No lock."""
        return []

    async def save(self, lock: Lock) -> None:
        """Nothing to keep."""

    async def delete(self, tokens: Iterable[str]) -> None:
        """Nothing to forget."""

    async def close(self) -> None:
        """Nothing to release."""


MOUNT = DavMount(
    "/dav",
    FilesystemStorage("/nonexistent", PROPS_CODEC),
    DavSettings(),
    LockManager(_NoLockStore()),
    [WebDav()],
    LocalBus(SQLiteChangeLog(Path("/nonexistent/changes.sqlite3"))),
)


def check_storage_path(
    path: str, reserved: frozenset[str] = FS_RESERVED, prefixes: tuple[str, ...] = FS_PREFIXES
) -> None:
    """A decoded path stays below the mount root: no dot, empty or reserved segment."""
    path.encode("utf-8")  # no surrogate (raw bytes that were not UTF-8)
    segments = path.split("/") if path else []
    assert all(s and s not in (".", "..") and "\x00" not in s for s in segments), path
    assert not any(s in reserved or s.startswith(prefixes) for s in segments), path
    joined = posixpath.normpath(posixpath.join("/root", path))
    assert joined == "/root" or joined.startswith("/root/"), path


def destination_path(header: str) -> str | None:
    """The storage path a Destination header (or a multiget href) names in MOUNT; None when
    it lies outside the mount or is refused: as a client error, or with 502 when it names
    another server (RFC 4918 §9.8.5)."""
    try:
        raw = destination_raw_path(header, HOST)
    except DAVError as exc:
        assert 400 <= exc.status < 500 or exc.status == 502, exc
        return None
    assert raw.startswith("/")
    if not MOUNT.contains(raw):
        return None
    path = allowed(MOUNT.storage_path, raw)
    if path is not None:
        check_storage_path(path)
    return path


def interpret(body: bytes) -> None:
    """Parse a body and read it as each method's body would be read; a body that is not of
    the method's kind must be refused as a client error, like any malformed one."""
    root = allowed(xml.parse, body)
    if root is None:
        return
    request = allowed(parse_propfind, root)
    assert request is None or isinstance(request, PropRequest)
    allowed(parse_update, xml.parse(body))  # it changes the tree: a fresh one
    if allowed(parse_lockinfo, root) is not None:
        owner = owner_element(body, root)
        if owner:  # stored, then written into lockdiscovery answers: it stands on its own
            assert etree.fromstring(owner).tag == "{DAV:}owner"
    # REPORT: what ItemRenderer, query, sync-collection, free-busy and multiget read.
    allowed(prop_selection, root)
    data = root.find("{DAV:}prop/{urn:ietf:params:xml:ns:caldav}calendar-data")
    if data is not None:
        allowed(calendar_data.parse, data)
    allowed(filters.parse_filter, root.find(f"{{{C}}}filter"))
    sync = allowed(parse_sync, root)
    if sync is not None:
        parse_sync_token(sync.token, "epoch")
    allowed(parse_free_busy, root)
    for link in root.iterfind("{DAV:}href"):
        destination_path((link.text or "").strip())
    for parse in (parse_mkcalendar, parse_mkcol):
        props = allowed(parse, xml.parse(body))
        if props:
            allowed(check_values, props)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_are_refused(body: bytes) -> None:
    interpret(body)


@FAST
@given(st.text(max_size=200), st.sampled_from(CODECS))
def test_random_text_in_any_encoding_parses_or_is_refused(text: str, codec: str) -> None:
    interpret(text.encode(codec, "xmlcharrefreplace"))


@pytest.mark.parametrize("template", TEMPLATES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_near_valid_bodies_are_read_or_refused(template: str, data: st.DataObject) -> None:
    interpret(data.draw(bodies(near_valid_trees(TEMPLATES[template]))))


@FAST
@given(bodies(RANDOM_TREES))
def test_random_trees_of_the_vocabulary_are_read_or_refused(body: bytes) -> None:
    interpret(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(tuple(TEMPLATES.values())).flatmap(near_valid_trees) | RANDOM_TREES)
def test_a_tree_reads_the_same_in_utf8_and_utf16(root: etree._Element) -> None:
    """RFC 4918 §8.2: UTF-8 and UTF-16 bodies are both accepted, and mean the same."""
    expected = etree.tostring(root, method="c14n")
    for codec, label in (
        ("utf-8", None),
        ("utf-8", "UTF-8"),
        ("utf-16", None),
        ("utf-16", "UTF-16"),
    ):
        assert etree.tostring(xml.parse(serialize(root, codec, label)), method="c14n") == expected


# -- the If header ---------------------------------------------------------------------------

SPACES = st.sampled_from(("", " ", "  ", "\t"))
TOKENS = st.sampled_from(
    ("opaquelocktoken:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "urn:uuid:1234", "DAV:no-lock")
) | st.text(st.sampled_from(LETTERS + "/:"), max_size=20).map("x:".__add__)
ETAGS = st.builds(
    '{}"{}"'.format, st.sampled_from(("", "W/")), st.text(st.sampled_from(LETTERS), max_size=12)
)
RESOURCES = st.sampled_from(
    ("/dav/a.txt", "http://127.0.0.1:8080/dav/", "http://[::1/x", "/%2e%2e/x", "/nowhere")
)
CONDITIONS = st.tuples(
    st.booleans(), st.one_of(TOKENS.map(lambda t: ("token", t)), ETAGS.map(lambda e: ("etag", e)))
)
IF_LISTS = st.lists(CONDITIONS, min_size=1, max_size=4)
# (resource tag or None, lists): the whole header is tagged, or it is not.
IF_HEADERS = st.lists(st.tuples(st.none(), IF_LISTS), min_size=1, max_size=3) | st.lists(
    st.tuples(RESOURCES, IF_LISTS), min_size=1, max_size=3
)
IfSpec = list[tuple[str | None, list[tuple[bool, tuple[str, str]]]]]


@st.composite
def if_header_texts(draw: st.DrawFn, spec: IfSpec) -> str:
    """One way to write an If header spec: random spacing, and Not in any case."""
    out = []
    for resource, conditions in spec:
        if resource is not None:
            out.append(f"<{resource}>" + draw(SPACES))
        items = []
        for negated, (kind, value) in conditions:
            word = draw(st.sampled_from(("Not", "not", "NOT"))) + " " if negated else ""
            items.append(word + (f"<{value}>" if kind == "token" else f"[{value}]"))
        out.append("(" + draw(SPACES) + (" " + draw(SPACES)).join(items) + draw(SPACES) + ")")
    return draw(SPACES).join(out) + draw(SPACES) if out else ""


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (the state lookup below answers at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def check_if_lists(lists: list[ifheader.IfList], tokens: frozenset[str]) -> None:
    """The parsed lists evaluate, whatever the states of the resources they name."""

    async def state_of(tag: str | None) -> ifheader.ResourceState | None:
        return None if tag == "/nowhere" else ifheader.ResourceState('"e"', tokens)

    assert isinstance(ifheader.holds(lists, _drive(ifheader.gather(lists, state_of))), bool)
    assert ifheader.submitted_tokens(lists) <= {
        c.token for lst in lists for c in lst.conditions if c.token
    }


@FAST
@given(IF_HEADERS.flatmap(lambda spec: st.tuples(st.just(spec), if_header_texts(spec))))
def test_if_headers_of_the_grammar_parse_to_what_they_say(pair: tuple[IfSpec, str]) -> None:
    spec, text = pair
    lists = ifheader.parse(text)
    expected = [
        ifheader.IfList(
            resource,
            tuple(
                ifheader.Condition(negated, **{kind: value})
                for negated, (kind, value) in conditions
            ),
        )
        for resource, conditions in spec
    ]
    assert lists == expected
    check_if_lists(lists, frozenset({"urn:uuid:1234"}))


IF_PIECES = st.sampled_from(
    ("(", ")", "<", ">", "[", "]", "Not", "Not ", '"', "W/", " ", "\t", ",", "\x00", "\udcff",
     "<>", "()", "[]", "é")
) | st.text(max_size=2)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(mutations(IF_HEADERS.flatmap(if_header_texts), IF_PIECES) | st.text(max_size=80))
def test_mutated_if_headers_parse_or_are_400(text: str) -> None:
    lists = allowed(ifheader.parse, text)
    if lists is not None:
        assert lists
        check_if_lists(lists, frozenset())


# -- Timeout header --------------------------------------------------------------------------


@FAST
@given(
    mutations(
        st.sampled_from(("Second-600", "Infinite, Second-4100000000", "Second-0", "Second-86400")),
        st.sampled_from(("9" * 5000, "²", "-", ",", " ", "x", "Second-", "Infinite")),
    )
    | st.text(max_size=40)
)
def test_any_timeout_header_gives_a_usable_duration(header: str) -> None:
    assert 1 <= parse_timeout(header, 3600, 86400) <= 86400


# -- paths -----------------------------------------------------------------------------------

SEGMENTS = st.sampled_from(
    (
        "a", "b.txt", "..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2e", "%00", "a%00b",
        "%2f", "%2F", "a%2fb", "%5c", "%", "%z", "%zz", "%ff", "%c3%a9", "%C3", "é", "\udcff",
        "\x00", ".davprops", ".davtmp-1", ".git", ".GiT", ".davkeep", "a" * 300, "%e2%82%ac",
        "a b", "%20", ";x=1",
    )
) | st.text(max_size=6)  # fmt: skip
RAW_PATHS = st.builds(
    lambda segments, sep, tail: "/" + sep.join(segments) + tail,
    st.lists(SEGMENTS, max_size=6),
    st.sampled_from(("/", "//")),
    st.sampled_from(("", "/", "?x=../..", "#frag", "?")),
)
PATH_PIECES = st.sampled_from(("/", "%", "%2e", ".", "..", "%00", "\x00", "\udcff", "?", "#"))


@settings(max_examples=500, deadline=None)
@given(mutations(RAW_PATHS, PATH_PIECES) | st.text(max_size=60))
def test_any_raw_path_decodes_below_the_root_or_is_refused(raw: str) -> None:
    for reserved, prefixes in ((FS_RESERVED, FS_PREFIXES), (GIT_RESERVED, ())):
        path = allowed(normalize, raw, reserved, prefixes)
        if path is not None:
            check_storage_path(path, reserved, prefixes)
    raw = "/dav" + raw if raw.startswith("/") else "/dav/" + raw
    path = allowed(MOUNT.storage_path, raw)
    if path is not None:
        check_storage_path(path)


@FAST
@given(mutations(RAW_PATHS.map(lambda p: "http://" + HOST + "/dav" + p), PATH_PIECES | IF_PIECES))
def test_any_destination_names_a_path_here_or_is_refused(header: str) -> None:
    destination_path(header)


NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1
).filter(lambda s: s not in (".", "..") and s not in FS_RESERVED and not s.startswith(FS_PREFIXES))


@FAST
@given(st.lists(NAMES, max_size=4), st.booleans())
def test_hrefs_decode_back_to_their_paths(segments: list[str], collection: bool) -> None:
    path = "/".join(segments)
    link = href("/dav", path, collection)
    assert MOUNT.storage_path(link) == path
    assert destination_raw_path(f"http://{HOST}{link}", HOST) == link


PLAIN_NAMES = st.from_regex(r"[A-Za-z0-9._~-]{1,12}", fullmatch=True)


@FAST
@given(st.lists(NAMES | PLAIN_NAMES, max_size=6))
def test_member_hrefs_are_the_hrefs_of_each_member(names: list[str]) -> None:
    # The batch checks the names at once: plain or not, each href is what href gives.
    folder = href("/dav", "cal", True)
    assert list(member_hrefs(folder, names)) == [href("/dav", f"cal/{n}", False) for n in names]


def test_member_hrefs_checks_each_batch_of_names_apart() -> None:
    # One name that needs encoding makes its batch take the way of each name, not others.
    names = [f"{i}.ics" for i in range(3 * PLAIN_BATCH)]
    names[PLAIN_BATCH + 7] = "with space.ics"
    want = [href("/dav", f"cal/{n}", False) for n in names]
    assert list(member_hrefs(href("/dav", "cal", True), names)) == want
    assert want[PLAIN_BATCH + 7] == "/dav/cal/with%20space.ics"
