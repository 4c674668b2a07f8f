"""PROPFIND (RFC 4918 §9.1, RFC 4331 quota): depths, allprop/prop/propname, live property
values, names that need encoding, hostile bodies, big collections, hidden bookkeeping."""

from __future__ import annotations

import os
import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from helpers import snapshot
from lxml import etree
from yarl import URL


def dav(local: str) -> str:
    """The Clark name of a DAV: element."""
    return "{DAV:}" + local


ALLPROP_FILE = {
    dav(n)
    for n in (
        "creationdate",
        "displayname",
        "getcontentlength",
        "getcontenttype",
        "getetag",
        "getlastmodified",
        "resourcetype",
        "supportedlock",
        "lockdiscovery",
    )
}
ALLPROP_COLLECTION = ALLPROP_FILE - {dav("getcontentlength"), dav("getcontenttype")}
QUOTA = {dav("quota-used-bytes"), dav("quota-available-bytes")}
DEAD = "{urn:example:test}color"
DEAD_XML = '<Z:color xmlns:Z="urn:example:test">blue</Z:color>'


def prop_body(*names: str) -> bytes:
    """A ``<D:propfind><D:prop>`` body naming the given Clark names."""
    root = etree.Element(dav("propfind"), nsmap={"D": "DAV:"})
    prop = etree.SubElement(root, dav("prop"))
    for name in names:
        etree.SubElement(prop, name)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


ALLPROP_BODY = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
PROPNAME_BODY = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'


async def send(
    client: TestClient,
    path: str | URL,
    body: bytes | None = None,
    depth: str | None = "0",
    **headers: str,
) -> ClientResponse:
    """Send a PROPFIND (``depth=None`` leaves the Depth header out)."""
    if depth is not None:
        headers["Depth"] = depth
    if body is not None:
        headers.setdefault("Content-Type", "application/xml; charset=utf-8")
    return await client.request("PROPFIND", path, data=body, headers=headers)


async def multistatus(
    client: TestClient,
    path: str | URL,
    body: bytes | None = None,
    depth: str | None = "0",
    **headers: str,
) -> etree._Element:
    """Send a PROPFIND, check it answered 207 with XML, and return the parsed body."""
    resp = await send(client, path, body, depth, **headers)
    data = await resp.read()
    assert resp.status == 207, data
    assert resp.content_type == "application/xml"
    root = etree.fromstring(data)
    assert root.tag == dav("multistatus")
    return root


def responses(ms: etree._Element) -> dict[str, etree._Element]:
    """The ``<D:response>`` elements by their percent-decoded href (each href once)."""
    out: dict[str, etree._Element] = {}
    for resp in ms.iterchildren(dav("response")):
        key = unquote(resp.findtext(dav("href")))
        assert key not in out, f"{key} reported twice"
        out[key] = resp
    return out


def status_code(el: etree._Element) -> int:
    """The code of the ``<D:status>`` child of ``el``."""
    return int(el.findtext(dav("status")).split()[1])


def propstats(response: etree._Element) -> dict[int, etree._Element]:
    """The ``<D:prop>`` of each ``<D:propstat>`` by status; a status appears once."""
    out: dict[int, etree._Element] = {}
    for ps in response.iterchildren(dav("propstat")):
        code = status_code(ps)
        assert code not in out, f"two propstats with status {code}"
        out[code] = ps.find(dav("prop"))
    return out


def props(response: etree._Element, status: int = 200) -> dict[str, etree._Element]:
    """The property elements reported with ``status``, by Clark name."""
    prop = propstats(response).get(status)
    if prop is None:
        return {}
    return {el.tag: el for el in prop if isinstance(el.tag, str)}


def only_response(ms: etree._Element) -> etree._Element:
    """The single ``<D:response>`` of a Depth 0 answer."""
    found = ms.findall(dav("response"))
    assert len(found) == 1
    return found[0]


async def set_dead(client: TestClient, path: str, prop_xml: str = DEAD_XML) -> None:
    """Store one dead property with PROPPATCH."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:">'
        f"<D:set><D:prop>{prop_xml}</D:prop></D:set></D:propertyupdate>"
    )
    resp = await client.request("PROPPATCH", path, data=body.encode())
    assert resp.status == 207, await resp.text()


# -- Depth --------------------------------------------------------------------------------


async def test_depth_0_on_a_file_reports_only_the_file(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"hello")
    resp = only_response(await multistatus(client, "/a.txt"))
    assert resp.findtext(dav("href")) == "/a.txt"
    assert props(resp)[dav("getcontentlength")].text == "5"


async def test_depth_0_on_a_collection_reports_only_the_collection(
    client: TestClient, root: Path
) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "inner.txt").write_bytes(b"x")
    resp = only_response(await multistatus(client, "/dir/"))
    assert resp.findtext(dav("href")) == "/dir/"
    assert props(resp)[dav("resourcetype")].find(dav("collection")) is not None


async def test_depth_1_lists_members_and_collection_hrefs_end_with_slash(
    client: TestClient, root: Path
) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_bytes(b"d")
    ms = await multistatus(client, "/", ALLPROP_BODY, depth="1")
    hrefs = [r.findtext(dav("href")) for r in ms]
    assert hrefs[0] == "/"  # the collection itself first, then its members in any order
    assert sorted(hrefs[1:]) == ["/a.txt", "/sub/"]


async def test_hrefs_carry_the_mount_prefix(make_client: Any, root: Path) -> None:
    client = await make_client(path="/files")
    (root / "a.txt").write_bytes(b"a")
    (root / "sub").mkdir()
    ms = await multistatus(client, "/files/", depth="1")
    hrefs = [r.findtext(dav("href")) for r in ms]
    assert hrefs[0] == "/files/"
    assert sorted(hrefs[1:]) == ["/files/a.txt", "/files/sub/"]


async def test_depth_1_on_a_file_reports_only_the_file(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"a")
    ms = await multistatus(client, "/a.txt", depth="1")
    assert list(responses(ms)) == ["/a.txt"]


@pytest.mark.parametrize("depth", ["infinity", None], ids=["infinity", "no-depth-header"])
async def test_depth_infinity_is_refused_by_default(
    client: TestClient, root: Path, depth: str | None
) -> None:
    (root / "a.txt").write_bytes(b"a")
    resp = await send(client, "/", ALLPROP_BODY, depth=depth)
    assert resp.status == 403
    error = etree.fromstring(await resp.read())
    assert error.tag == dav("error")
    assert [child.tag for child in error] == [dav("propfind-finite-depth")]


@pytest.mark.parametrize("depth", ["infinity", None], ids=["infinity", "no-depth-header"])
async def test_depth_infinity_lists_the_whole_tree_when_enabled(
    make_client: Any, root: Path, depth: str | None
) -> None:
    client = await make_client(depth_infinity=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "one" / "two").mkdir(parents=True)
    (root / "one" / "two" / "deep.txt").write_bytes(b"d")
    (root / "one" / "b.txt").write_bytes(b"b")
    ms = await multistatus(client, "/", depth=depth)
    assert set(responses(ms)) == {
        "/",
        "/a.txt",
        "/one/",
        "/one/b.txt",
        "/one/two/",
        "/one/two/deep.txt",
    }


@pytest.mark.parametrize("depth", ["2", "one", "1,noroot", "-1", ""])
async def test_invalid_depth_is_400(client: TestClient, depth: str) -> None:
    resp = await send(client, "/", depth=depth)
    assert resp.status == 400


# -- allprop ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [ALLPROP_BODY, None, b""], ids=["allprop", "no-body", "empty"])
async def test_allprop_on_a_file_returns_the_live_and_dead_properties(
    client: TestClient, root: Path, body: bytes | None
) -> None:
    (root / "a.txt").write_bytes(b"hello")
    await set_dead(client, "/a.txt")
    resp = only_response(await multistatus(client, "/a.txt", body))
    found = props(resp)
    assert set(found) == ALLPROP_FILE | {DEAD}
    assert found[DEAD].text == "blue"
    assert len(found[dav("resourcetype")]) == 0
    assert propstats(resp).keys() == {200}


@pytest.mark.parametrize("body", [ALLPROP_BODY, None, b""], ids=["allprop", "no-body", "empty"])
async def test_allprop_on_a_collection_returns_the_live_and_dead_properties(
    client: TestClient, root: Path, body: bytes | None
) -> None:
    (root / "dir").mkdir()
    await set_dead(client, "/dir/")
    resp = only_response(await multistatus(client, "/dir/", body))
    found = props(resp)
    assert set(found) == ALLPROP_COLLECTION | {DEAD}
    assert [c.tag for c in found[dav("resourcetype")]] == [dav("collection")]
    assert propstats(resp).keys() == {200}


async def test_allprop_leaves_out_the_quota_properties(client: TestClient) -> None:
    found = props(only_response(await multistatus(client, "/", ALLPROP_BODY)))
    assert not QUOTA & set(found)


async def test_allprop_with_include_adds_quota_available_bytes(client: TestClient) -> None:
    body = (
        b'<D:propfind xmlns:D="DAV:"><D:allprop/>'
        b"<D:include><D:quota-available-bytes/></D:include></D:propfind>"
    )
    found = props(only_response(await multistatus(client, "/", body)))
    assert set(found) == ALLPROP_COLLECTION | {dav("quota-available-bytes")}
    assert int(found[dav("quota-available-bytes")].text) >= 0


# -- prop and propname --------------------------------------------------------------------


async def test_prop_reports_known_ones_200_and_unknown_ones_404(
    client: TestClient, root: Path
) -> None:
    (root / "a.txt").write_bytes(b"hello")
    await set_dead(client, "/a.txt")
    unknown = {dav("nosuchprop"), "{urn:other}missing", "bare"}
    body = prop_body(dav("getetag"), dav("displayname"), DEAD, *sorted(unknown))
    resp = only_response(await multistatus(client, "/a.txt", body))
    assert set(props(resp, 200)) == {dav("getetag"), dav("displayname"), DEAD}
    missing = props(resp, 404)
    assert set(missing) == unknown
    assert all(len(el) == 0 and not el.text for el in missing.values())


@pytest.mark.parametrize(
    "headers",
    [{"Brief": "t"}, {"Prefer": "return=minimal"}, {"Prefer": "return = minimal"}],
    ids=["brief", "prefer", "prefer-spaces"],
)
async def test_minimal_answers_drop_the_404_propstat(
    client: TestClient, root: Path, headers: dict[str, str]
) -> None:
    (root / "a.txt").write_bytes(b"hello")
    body = prop_body(dav("getetag"), "{urn:other}missing")
    resp = only_response(await multistatus(client, "/a.txt", body, **headers))
    assert propstats(resp).keys() == {200}
    assert set(props(resp)) == {dav("getetag")}


async def test_minimal_answer_with_only_unknown_properties_keeps_an_empty_200_propstat(
    client: TestClient, root: Path
) -> None:
    # RFC 4918's DTD wants a status or at least one propstat in every response.
    (root / "a.txt").write_bytes(b"hello")
    body = prop_body("{urn:other}missing")
    resp = only_response(await multistatus(client, "/a.txt", body, Brief="t"))
    assert propstats(resp).keys() == {200}
    assert props(resp) == {}


async def test_propname_returns_names_only(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"hello")
    await set_dead(client, "/a.txt")
    resp = only_response(await multistatus(client, "/a.txt", PROPNAME_BODY))
    assert propstats(resp).keys() == {200}
    found = props(resp)
    assert set(found) == ALLPROP_FILE | {DEAD}
    for el in found.values():
        assert len(el) == 0
        assert not el.text
        assert not el.attrib


# -- live property values ----------------------------------------------------------------


def _statvfs_figures(path: Path) -> tuple[int, int, int]:
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


async def test_quota_properties_of_a_collection_match_statvfs(
    client: TestClient, root: Path
) -> None:
    (root / "dir").mkdir()
    body = prop_body(dav("quota-used-bytes"), dav("quota-available-bytes"))
    found = props(only_response(await multistatus(client, "/dir/", body)))
    used, available, total = _statvfs_figures(root)
    tolerance = max(64 << 20, total // 100)  # other processes write to the disk meanwhile
    assert re.fullmatch(r"\d+", found[dav("quota-used-bytes")].text)
    assert re.fullmatch(r"\d+", found[dav("quota-available-bytes")].text)
    assert abs(int(found[dav("quota-used-bytes")].text) - used) <= tolerance
    assert abs(int(found[dav("quota-available-bytes")].text) - available) <= tolerance


async def test_quota_properties_of_a_file_are_404(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"hello")
    body = prop_body(dav("quota-used-bytes"), dav("quota-available-bytes"))
    resp = only_response(await multistatus(client, "/a.txt", body))
    assert set(props(resp, 404)) == QUOTA
    assert props(resp, 200) == {}


async def test_getetag_equals_the_etag_of_get(client: TestClient, root: Path) -> None:
    (root / "a.txt").write_bytes(b"hello")
    found = props(only_response(await multistatus(client, "/a.txt", prop_body(dav("getetag")))))
    get = await client.get("/a.txt")
    assert get.status == 200
    assert found[dav("getetag")].text == get.headers["ETag"]


async def test_getetag_is_the_inode_mtime_and_size_in_hex(client: TestClient, root: Path) -> None:
    """The filesystem's ETag (what clients kept from earlier answers compares against)."""
    file = root / "a.txt"
    file.write_bytes(b"hello")
    st = file.stat()
    found = props(only_response(await multistatus(client, "/a.txt", prop_body(dav("getetag")))))
    assert found[dav("getetag")].text == f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


async def test_getlastmodified_is_an_rfc1123_date_of_the_mtime(
    client: TestClient, root: Path
) -> None:
    file = root / "a.txt"
    file.write_bytes(b"hello")
    os.utime(file, (1_000_000_000, 1_234_567_890))
    body = prop_body(dav("getlastmodified"))
    text = props(only_response(await multistatus(client, "/a.txt", body)))[
        dav("getlastmodified")
    ].text
    assert text == "Fri, 13 Feb 2009 23:31:30 GMT"
    assert re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT",
        text,
    )
    assert parsedate_to_datetime(text).timestamp() == int(file.stat().st_mtime)


async def test_getcontentlength_is_the_size(client: TestClient, root: Path) -> None:
    (root / "a.bin").write_bytes(b"x" * 12345)
    body = prop_body(dav("getcontentlength"))
    found = props(only_response(await multistatus(client, "/a.bin", body)))
    assert found[dav("getcontentlength")].text == "12345"


async def test_getcontenttype_follows_the_file_name(client: TestClient, root: Path) -> None:
    (root / "page.html").write_bytes(b"<p>")
    (root / "blob").write_bytes(b"?")
    for path, expected in (("/page.html", "text/html"), ("/blob", "application/octet-stream")):
        body = prop_body(dav("getcontenttype"))
        found = props(only_response(await multistatus(client, path, body)))
        assert found[dav("getcontenttype")].text == expected


async def test_creationdate_is_an_rfc3339_date(client: TestClient, root: Path) -> None:
    file = root / "a.txt"
    file.write_bytes(b"a")
    os.utime(file, (1_000_000_000, 1_234_567_890))
    body = prop_body(dav("creationdate"))
    text = props(only_response(await multistatus(client, "/a.txt", body)))[dav("creationdate")].text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    assert text <= "2009-02-13T23:31:30Z"  # never after the last modification


async def test_getcontentlength_of_a_collection_is_404(client: TestClient, root: Path) -> None:
    (root / "dir").mkdir()
    body = prop_body(dav("getcontentlength"))
    resp = only_response(await multistatus(client, "/dir/", body))
    assert set(props(resp, 404)) == {dav("getcontentlength")}


# -- names that need encoding -------------------------------------------------------------


async def test_non_ascii_names_round_trip_through_hrefs(client: TestClient, root: Path) -> None:
    assert (await client.request("MKCOL", "/a%20b/")).status == 201
    put = await client.put(URL("/a%20b/%C3%BC%20%E2%82%AC.txt", encoded=True), data=b"euro")
    assert put.status == 201
    assert (root / "a b" / "ü €.txt").read_bytes() == b"euro"
    ms = await multistatus(client, URL("/a%20b/", encoded=True), depth="1")
    hrefs = [r.findtext(dav("href")) for r in ms]
    assert [unquote(h) for h in hrefs] == ["/a b/", "/a b/ü €.txt"]
    get = await client.get(URL(hrefs[1], encoded=True))
    assert get.status == 200
    assert await get.read() == b"euro"


@pytest.mark.parametrize("name", ["a#b.txt", "what?.txt", "x&y.txt", "100%.txt", "50%20.txt"])
async def test_special_characters_round_trip_through_hrefs(
    client: TestClient, root: Path, name: str
) -> None:
    put = await client.put(URL("/" + quote(name, safe=""), encoded=True), data=name.encode())
    assert put.status == 201
    assert (root / name).read_bytes() == name.encode()
    ms = await multistatus(client, "/", depth="1")
    found = responses(ms)
    assert set(found) == {"/", "/" + name}
    link = found["/" + name].findtext(dav("href"))
    get = await client.get(URL(link, encoded=True))
    assert get.status == 200
    assert await get.read() == name.encode()


# -- bad requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:propfind>',
        b"not xml at all",
        b'<D:propfind xmlns:D="DAV:"><D:prop><X:getetag/></D:prop></D:propfind>',
    ],
    ids=["unclosed", "not-xml", "unbound-prefix"],
)
async def test_malformed_xml_is_400(client: TestClient, body: bytes) -> None:
    assert (await send(client, "/", body)).status == 400


@pytest.mark.parametrize(
    "body",
    [
        b'<D:propertyupdate xmlns:D="DAV:"/>',
        b"<propfind><allprop/></propfind>",
        b'<D:propfind xmlns:D="DAV:"/>',
    ],
    ids=["other-element", "no-namespace", "no-kind"],
)
async def test_a_body_that_is_not_a_propfind_is_400(client: TestClient, body: bytes) -> None:
    assert (await send(client, "/", body)).status == 400


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE D:propfind [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&lol9;</D:getetag></D:prop></D:propfind>"""


async def test_entity_expansion_is_400(client: TestClient) -> None:
    assert (await send(client, "/", BILLION_LAUGHS)).status == 400


def _external_entity_body(target: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE D:propfind [<!ENTITY xxe SYSTEM "file://{target}">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
        "<X:leak xmlns:X='urn:x'>&xxe;</X:leak></D:prop></D:propfind>"
    ).encode()


async def test_external_entity_is_400_and_leaks_nothing(client: TestClient, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a9c")
    resp = await send(client, "/", _external_entity_body(str(secret)))
    assert resp.status == 400
    assert b"TOP-SECRET-7f3a9c" not in await resp.read()


async def test_external_entity_on_etc_passwd_is_400_and_leaks_nothing(
    client: TestClient,
) -> None:
    resp = await send(client, "/", _external_entity_body("/etc/passwd"))
    assert resp.status == 400
    answer = await resp.read()
    first_line = Path("/etc/passwd").read_bytes().splitlines()[0]
    assert first_line not in answer
    assert b"root:" not in answer


@pytest.mark.parametrize("depth", ["0", "1"])
async def test_missing_resource_is_404(client: TestClient, depth: str) -> None:
    assert (await send(client, "/nope.txt", ALLPROP_BODY, depth=depth)).status == 404
    assert (await send(client, "/nope/", ALLPROP_BODY, depth=depth)).status == 404


# -- large collections and hidden bookkeeping ------------------------------------------


async def test_a_large_collection_streams_every_member_once_in_order(
    client: TestClient, root: Path
) -> None:
    big = root / "big"
    big.mkdir()
    names = [f"member-{i:05d}.txt" for i in range(2000)]
    for name in names:
        (big / name).write_bytes(b"")
    resp = await send(client, "/big/", prop_body(dav("getetag")), depth="1")
    assert resp.status == 207
    assert resp.headers["Transfer-Encoding"] == "chunked"
    ms = etree.fromstring(await resp.read())
    hrefs = [r.findtext(dav("href")) for r in ms.iterchildren(dav("response"))]
    assert len(hrefs) == 2001
    assert len(set(hrefs)) == 2001
    assert hrefs[0] == "/big/"
    assert sorted(hrefs[1:]) == sorted("/big/" + n for n in names)


async def test_bookkeeping_files_never_appear_in_listings(make_client: Any, root: Path) -> None:
    client = await make_client(depth_infinity=True)
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "dir" / "b.txt").write_bytes(b"b")
    (root / "dir" / "sub" / "c.txt").write_bytes(b"c")
    for path in ("/a.txt", "/dir/", "/dir/b.txt", "/dir/sub/", "/dir/sub/c.txt", "/"):
        await set_dead(client, path)
    (root / "dir" / ".davtmp-leftover").write_bytes(b"half a write")
    assert any(".davprops" in p for p in snapshot(root))
    expected = {"/", "/a.txt", "/dir/", "/dir/b.txt", "/dir/sub/", "/dir/sub/c.txt"}
    everything = await multistatus(client, "/", ALLPROP_BODY, depth="infinity")
    assert set(responses(everything)) == expected
    for folder in ("/", "/dir/", "/dir/sub/"):
        listing = await multistatus(client, folder, PROPNAME_BODY, depth="1")
        hrefs = set(responses(listing))
        assert hrefs <= expected
        assert not any(".davprops" in h or ".davtmp-" in h for h in hrefs)


@pytest.mark.parametrize("path", ["/.davprops/", "/.davprops/self", "/dir/.davtmp-leftover"])
async def test_bookkeeping_files_cannot_be_asked_for(
    client: TestClient, root: Path, path: str
) -> None:
    (root / "dir").mkdir()
    (root / "dir" / ".davtmp-leftover").write_bytes(b"x")
    await set_dead(client, "/")
    resp = await send(client, path, ALLPROP_BODY)
    assert resp.status == 403
    assert b"urn:example:test" not in await resp.read()
