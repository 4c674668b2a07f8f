"""PropRenderer's one-step allprop path must answer exactly what the LIVE renderers do."""

from __future__ import annotations

import time

import pytest
from davserver.backends.base import Resource

from davserver.dav.paths import href
from davserver.dav.props import LIVE, LiveRenderer, PropRenderer, PropRequest
from davserver.locks.manager import Lock

NOW = 1_763_000_000.25

RESOURCES = [
    Resource("f.txt", False, 100, NOW, NOW - 10, '"1a-2b-64"', "text/plain"),
    Resource("dir/no type", False, 0, NOW, NOW + 10, '"1a-2b-0"', None),
    Resource("dir/sub", True, 0, NOW, NOW, '"1a-2b-0"', None),
    Resource("", True, 0, NOW, NOW, '"1-2-0"', None),
    Resource("a&b/<c> é.bin", False, 7, NOW, NOW, '"x&<y>"', "application/x-a&b"),
]
LOCK = Lock(
    token="urn:uuid:00000000-0000-0000-0000-000000000001",
    namespace="/dav",
    root="dir",
    scope="exclusive",
    depth="infinity",
    owner=b"<D:href>me</D:href>",
    timeout=3600,
    expires=time.time() + 3600,
    principal="anonymous",
    collection=True,
)


def covering(path: str) -> list[Lock]:
    return [LOCK] if path == "dir" or path.startswith("dir/") else []


def general_table() -> dict[str, LiveRenderer]:
    """LIVE with one renderer wrapped: same answers, but not the standard table."""
    etag = LIVE["{DAV:}getetag"]
    return {**LIVE, "{DAV:}getetag": lambda r, res: etag(r, res)}


@pytest.mark.parametrize("res", RESOURCES, ids=lambda r: r.path or "root")
@pytest.mark.parametrize("locks", [None, covering], ids=["no-locking", "locking"])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("extended", [False, True], ids=["LIVE", "LIVE+discovery"])
def test_the_allprop_shortcut_renders_like_the_live_table(
    res: Resource, locks: object, minimal: bool, extended: bool
) -> None:
    request = PropRequest("allprop")
    live = {**LIVE, "{DAV:}owner": lambda r, res: "<D:owner/>"} if extended else LIVE
    fast = PropRenderer("/dav", request, live=live, minimal=minimal, locks=locks)  # type: ignore[arg-type]
    general = PropRenderer(
        "/dav",
        request,
        live=general_table(),
        minimal=minimal,
        locks=locks,  # type: ignore[arg-type]
    )
    assert fast.render(res) == general.render(res)
    assert fast._standard_allprop
    assert not general._standard_allprop


def test_one_renderer_renders_members_with_and_without_dead_properties_alike() -> None:
    """A Depth 1's renderer takes the shortcut for the plain members only: a member with
    dead properties in between (and after a table is replaced) renders in full."""
    dead = Resource("g.txt", False, 1, NOW, NOW, '"2"', "text/plain", {"{urn:x}a": b"<a/>"})
    members = [RESOURCES[0], dead, RESOURCES[1], dead, RESOURCES[2]]
    request = PropRequest("allprop")
    fast = PropRenderer("/dav", request, locks=covering)
    general = PropRenderer("/dav", request, live=general_table(), locks=covering)
    assert [fast.render(r) for r in members] == [general.render(r) for r in members]
    assert "<a/>" in fast.render(dead)
    fast.live = {**LIVE, "{DAV:}getetag": lambda r, res: "<D:getetag>other</D:getetag>"}
    assert "<D:getetag>other</D:getetag>" in fast.render(RESOURCES[0])


FILES = [r for r in RESOURCES if not r.is_collection]
FILE_NAMES = (
    "{DAV:}getetag", "{DAV:}getcontenttype", "{DAV:}getcontentlength",
    "{DAV:}getlastmodified", "{DAV:}resourcetype", "{DAV:}creationdate",
)  # fmt: skip


@pytest.mark.parametrize("res", FILES, ids=lambda r: r.path)
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize(
    "names",
    [FILE_NAMES, FILE_NAMES[:1], FILE_NAMES[1:2], FILE_NAMES[::-1], FILE_NAMES[1:3]],
    ids=["all", "etag", "type", "reversed", "type+length"],
)
def test_the_file_renderer_renders_like_the_live_table(
    res: Resource, minimal: bool, names: tuple[str, ...]
) -> None:
    renderer = PropRenderer("/dav", PropRequest("prop", names), minimal=minimal)
    render = renderer.file_renderer()
    assert render is not None
    assert render(href("/dav", res.path, False), res) == renderer.render(res)


@pytest.mark.parametrize(
    "request_",
    [
        PropRequest("allprop"),
        PropRequest("propname"),
        PropRequest("prop", ()),
        PropRequest("prop", ("{DAV:}getetag", "{DAV:}displayname")),
        PropRequest("prop", ("{DAV:}getetag", "{DAV:}lockdiscovery")),
        PropRequest("prop", ("{DAV:}getetag", "{urn:x}dead")),
    ],
)
def test_the_file_renderer_is_only_for_the_properties_files_alone_give(
    request_: PropRequest,
) -> None:
    assert PropRenderer("/dav", request_).file_renderer() is None


def test_the_file_renderer_needs_the_live_renderers_or_a_voucher() -> None:
    request = PropRequest("prop", ("{DAV:}getetag", "{DAV:}resourcetype"))
    live = {**LIVE, "{DAV:}resourcetype": lambda r, res: LIVE["{DAV:}resourcetype"](r, res)}
    renderer = PropRenderer("/dav", request, live=live)
    assert renderer.file_renderer() is None
    assert renderer.file_renderer(frozenset({"{DAV:}resourcetype"})) is not None
    assert PropRenderer("/dav", request, live=general_table()).file_renderer() is None
