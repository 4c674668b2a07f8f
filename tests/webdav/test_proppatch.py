"""PROPPATCH (RFC 4918 §9.2): dead properties kept exactly, document order, atomicity
with protected live properties, displayname, bad requests."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient
from helpers import snapshot
from lxml import etree

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
HEAD = '<?xml version="1.0" encoding="utf-8"?>'


def dav(local: str) -> str:
    """The Clark name of a DAV: element."""
    return "{DAV:}" + local


def update(*instructions: str, root_attrs: str = "") -> bytes:
    """A propertyupdate body from ``<D:set>``/``<D:remove>`` instructions."""
    return (
        f'{HEAD}<D:propertyupdate xmlns:D="DAV:"{root_attrs}>'
        + "".join(instructions)
        + "</D:propertyupdate>"
    ).encode()


def set_(props_xml: str, prop_attrs: str = "") -> str:
    """A ``<D:set>`` instruction."""
    return f"<D:set><D:prop{prop_attrs}>{props_xml}</D:prop></D:set>"


def remove(props_xml: str) -> str:
    """A ``<D:remove>`` instruction."""
    return f"<D:remove><D:prop>{props_xml}</D:prop></D:remove>"


def status_code(el: etree._Element) -> int:
    """The code of the ``<D:status>`` child of ``el``."""
    return int(el.findtext(dav("status")).split()[1])


def propstats(response: etree._Element) -> dict[int, etree._Element]:
    """Each ``<D:propstat>`` of a response by status; a status appears once."""
    out: dict[int, etree._Element] = {}
    for ps in response.iterchildren(dav("propstat")):
        code = status_code(ps)
        assert code not in out, f"two propstats with status {code}"
        out[code] = ps
    return out


def names_in(propstat: etree._Element) -> set[str]:
    """The property names a propstat lists."""
    return {el.tag for el in propstat.find(dav("prop")) if isinstance(el.tag, str)}


async def proppatch(client: TestClient, path: str, body: bytes) -> etree._Element:
    """Send a PROPPATCH that must answer 207; return its single ``<D:response>``."""
    resp = await client.request(
        "PROPPATCH", path, data=body, headers={"Content-Type": "application/xml"}
    )
    data = await resp.read()
    assert resp.status == 207, data
    ms = etree.fromstring(data)
    assert ms.tag == dav("multistatus")
    found = ms.findall(dav("response"))
    assert len(found) == 1
    assert unquote(found[0].findtext(dav("href"))) == unquote(path)
    return found[0]


async def read_prop(client: TestClient, path: str, name: str) -> etree._Element | None:
    """The element PROPFIND reports for ``name`` on ``path`` (Depth 0), None when 404."""
    query = etree.Element(dav("propfind"), nsmap={"D": "DAV:"})
    etree.SubElement(etree.SubElement(query, dav("prop")), name)
    resp = await client.request(
        "PROPFIND", path, data=etree.tostring(query), headers={"Depth": "0"}
    )
    data = await resp.read()
    assert resp.status == 207, data
    (response,) = etree.fromstring(data).findall(dav("response"))
    for ps in response.iterchildren(dav("propstat")):
        for el in ps.find(dav("prop")):
            if el.tag == name:
                return el if status_code(ps) == 200 else None
    raise AssertionError(f"{name} missing from the PROPFIND answer")


def sent_prop(body: bytes, name: str) -> etree._Element:
    """The property element ``name`` as it appears in a request body."""
    for el in etree.fromstring(body).iter(name):
        return el
    raise AssertionError(f"{name} not in the body")


def assert_same_xml(got: etree._Element, want: etree._Element) -> None:
    """Same tag, attributes, text and children, recursively (tails of children too)."""
    assert got.tag == want.tag
    assert dict(got.attrib) == dict(want.attrib)
    assert (got.text or "") == (want.text or "")
    assert len(got) == len(want), (etree.tostring(got), etree.tostring(want))
    for g, w in zip(got, want, strict=True):
        assert_same_xml(g, w)
        assert (g.tail or "") == (w.tail or "")


def effective_lang(el: etree._Element) -> str | None:
    """The xml:lang in scope at ``el``."""
    for node in (el, *el.iterancestors()):
        lang = node.get(XML_LANG)
        if lang is not None:
            return lang
    return None


@pytest.fixture
def file(root: Path) -> Path:
    """A file ``/a.txt`` to set properties on."""
    path = root / "a.txt"
    path.write_bytes(b"hello")
    return path


Z = 'xmlns:Z="urn:z"'


# -- values round-trip exactly -------------------------------------------------------


async def test_set_returns_nested_elements_exactly(client: TestClient, file: Path) -> None:
    value = (
        f"<Z:author {Z}>\n  <Z:name>Ada <Z:b>King</Z:b> Lovelace</Z:name>\n"
        "  <Z:born>1815</Z:born><Z:empty/>\n</Z:author>"
    )
    body = update(set_(value))
    response = await proppatch(client, "/a.txt", body)
    assert propstats(response).keys() == {200}
    assert names_in(propstats(response)[200]) == {"{urn:z}author"}
    got = await read_prop(client, "/a.txt", "{urn:z}author")
    assert got is not None
    assert_same_xml(got, sent_prop(body, "{urn:z}author"))


async def test_set_keeps_attributes(client: TestClient, file: Path) -> None:
    value = (
        f'<Z:link {Z} xmlns:Y="urn:y" href="a&amp;b" Y:rel="next" empty=""><Z:part n="1"/></Z:link>'
    )
    body = update(set_(value))
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "{urn:z}link")
    assert got is not None
    assert dict(got.attrib) == {"href": "a&b", "{urn:y}rel": "next", "empty": ""}
    assert_same_xml(got, sent_prop(body, "{urn:z}link"))


async def test_set_keeps_xml_lang_on_the_property(client: TestClient, file: Path) -> None:
    await proppatch(client, "/a.txt", update(set_(f'<Z:title {Z} xml:lang="fr">Bonjour</Z:title>')))
    got = await read_prop(client, "/a.txt", "{urn:z}title")
    assert got is not None
    assert got.text == "Bonjour"
    assert effective_lang(got) == "fr"


async def test_set_keeps_xml_lang_inherited_from_the_prop_element(
    client: TestClient, file: Path
) -> None:
    body = update(set_(f"<Z:title {Z}>Hallo</Z:title>", prop_attrs=' xml:lang="de"'))
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "{urn:z}title")
    assert got is not None
    assert got.text == "Hallo"
    assert effective_lang(got) == "de"


async def test_set_keeps_xml_lang_inherited_from_the_root(client: TestClient, file: Path) -> None:
    body = update(set_(f"<Z:title {Z}>Hola</Z:title>"), root_attrs=' xml:lang="es"')
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "{urn:z}title")
    assert got is not None
    assert effective_lang(got) == "es"


async def test_set_keeps_a_namespace_declared_on_the_property_for_its_text(
    client: TestClient, file: Path
) -> None:
    await proppatch(client, "/a.txt", update(set_(f'<Z:x {Z} xmlns:q="urn:q">q:name</Z:x>')))
    got = await read_prop(client, "/a.txt", "{urn:z}x")
    assert got is not None
    assert got.text == "q:name"
    assert got.nsmap.get("q") == "urn:q"


async def test_set_keeps_a_namespace_declared_on_an_ancestor_for_its_text(
    client: TestClient, file: Path
) -> None:
    body = update(set_("<Z:x>q:name</Z:x>"), root_attrs=' xmlns:Z="urn:z" xmlns:q="urn:q"')
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "{urn:z}x")
    assert got is not None
    assert got.text == "q:name"
    assert got.nsmap.get("q") == "urn:q"


async def test_set_a_property_in_the_empty_namespace(client: TestClient, file: Path) -> None:
    body = update(set_("<plain>value <inner>x</inner></plain>"))
    response = await proppatch(client, "/a.txt", body)
    assert names_in(propstats(response)[200]) == {"plain"}
    got = await read_prop(client, "/a.txt", "plain")
    assert got is not None
    assert_same_xml(got, sent_prop(body, "plain"))


async def test_set_a_property_in_the_empty_namespace_under_a_default_namespace(
    client: TestClient, file: Path
) -> None:
    body = (
        f'{HEAD}<propertyupdate xmlns="DAV:"><set><prop><plain xmlns="">v</plain>'
        "</prop></set></propertyupdate>"
    ).encode()
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "plain")
    assert got is not None
    assert got.tag == "plain"
    assert got.text == "v"


async def test_set_keeps_characters_above_the_bmp(client: TestClient, file: Path) -> None:
    text = "smile \U0001f600 clef \U0001d11e han \U00020000"
    await proppatch(client, "/a.txt", update(set_(f"<Z:e {Z}>{text}</Z:e>")))
    got = await read_prop(client, "/a.txt", "{urn:z}e")
    assert got is not None
    assert got.text == text


async def test_set_replaces_an_earlier_value(client: TestClient, file: Path) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>one</Z:v>")))
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>two</Z:v>")))
    got = await read_prop(client, "/a.txt", "{urn:z}v")
    assert got is not None
    assert got.text == "two"


async def test_set_keeps_other_dead_properties(client: TestClient, file: Path) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:one {Z}>1</Z:one>")))
    await proppatch(client, "/a.txt", update(set_(f"<Z:two {Z}>2</Z:two>")))
    one = await read_prop(client, "/a.txt", "{urn:z}one")
    assert one is not None
    assert one.text == "1"


# -- remove and document order -----------------------------------------------------------


async def test_remove_deletes_the_property(client: TestClient, file: Path) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>one</Z:v><Z:w {Z}>w</Z:w>")))
    response = await proppatch(client, "/a.txt", update(remove(f"<Z:v {Z}/>")))
    assert propstats(response).keys() == {200}
    assert names_in(propstats(response)[200]) == {"{urn:z}v"}
    assert await read_prop(client, "/a.txt", "{urn:z}v") is None
    assert await read_prop(client, "/a.txt", "{urn:z}w") is not None


async def test_remove_of_an_absent_property_succeeds(client: TestClient, file: Path) -> None:
    # RFC 4918 §14.23: removing a property that does not exist is not an error.
    response = await proppatch(client, "/a.txt", update(remove(f"<Z:nothing {Z}/>")))
    assert propstats(response).keys() == {200}


async def test_set_then_remove_in_one_request_removes(client: TestClient, file: Path) -> None:
    body = update(set_(f"<Z:v {Z}>one</Z:v>"), remove(f"<Z:v {Z}/>"))
    await proppatch(client, "/a.txt", body)
    assert await read_prop(client, "/a.txt", "{urn:z}v") is None


async def test_remove_then_set_in_one_request_sets(client: TestClient, file: Path) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>old</Z:v>")))
    body = update(remove(f"<Z:v {Z}/>"), set_(f"<Z:v {Z}>new</Z:v>"))
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "{urn:z}v")
    assert got is not None
    assert got.text == "new"


async def test_two_sets_in_one_request_keep_the_last(client: TestClient, file: Path) -> None:
    body = update(set_(f"<Z:v {Z}>first</Z:v>"), set_(f"<Z:v {Z}>second</Z:v>"))
    await proppatch(client, "/a.txt", body)
    got = await read_prop(client, "/a.txt", "{urn:z}v")
    assert got is not None
    assert got.text == "second"


async def test_properties_on_a_collection(client: TestClient, root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "inner.txt").write_bytes(b"x")
    await proppatch(client, "/dir/", update(set_(f"<Z:v {Z}>folder</Z:v>")))
    got = await read_prop(client, "/dir/", "{urn:z}v")
    assert got is not None
    assert got.text == "folder"
    assert await read_prop(client, "/dir/inner.txt", "{urn:z}v") is None
    await proppatch(client, "/dir/", update(remove(f"<Z:v {Z}/>")))
    assert await read_prop(client, "/dir/", "{urn:z}v") is None


async def test_properties_on_the_root_collection(client: TestClient) -> None:
    await proppatch(client, "/", update(set_(f"<Z:v {Z}>top</Z:v>")))
    got = await read_prop(client, "/", "{urn:z}v")
    assert got is not None
    assert got.text == "top"


# -- protected properties make the whole request fail ---------------------------------------


@pytest.mark.parametrize(
    "instruction",
    [
        set_('<D:getetag>"forged"</D:getetag>'),
        set_("<D:getcontentlength>1</D:getcontentlength>"),
        set_("<D:resourcetype><D:collection/></D:resourcetype>"),
        set_("<D:lockdiscovery/>"),
        set_("<D:supportedlock/>"),
        set_("<D:getlastmodified>Mon, 01 Jan 2001 00:00:00 GMT</D:getlastmodified>"),
        set_("<D:creationdate>2001-01-01T00:00:00Z</D:creationdate>"),
        set_("<D:getcontenttype>text/html</D:getcontenttype>"),
        set_("<D:quota-used-bytes>1</D:quota-used-bytes>"),
        remove("<D:getetag/>"),
    ],
    ids=[
        "getetag",
        "getcontentlength",
        "resourcetype",
        "lockdiscovery",
        "supportedlock",
        "getlastmodified",
        "creationdate",
        "getcontenttype",
        "quota-used-bytes",
        "remove-getetag",
    ],
)
async def test_a_protected_property_fails_the_whole_request(
    client: TestClient, root: Path, file: Path, instruction: str
) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:kept {Z}>before</Z:kept>")))
    before = snapshot(root)
    body = update(set_(f"<Z:new {Z}>n</Z:new>"), instruction, remove(f"<Z:kept {Z}/>"))
    response = await proppatch(client, "/a.txt", body)
    stats = propstats(response)
    assert stats.keys() == {403, 424}
    protected = names_in(stats[403])
    assert len(protected) == 1
    assert next(iter(protected)).startswith("{DAV:}")
    error = stats[403].find(dav("error"))
    assert error is not None
    assert [c.tag for c in error] == [dav("cannot-modify-protected-property")]
    assert names_in(stats[424]) == {"{urn:z}new", "{urn:z}kept"}
    assert snapshot(root) == before
    assert await read_prop(client, "/a.txt", "{urn:z}new") is None
    kept = await read_prop(client, "/a.txt", "{urn:z}kept")
    assert kept is not None
    assert kept.text == "before"


# -- displayname ----------------------------------------------------------------------


async def test_displayname_can_be_set_and_replaces_the_name(client: TestClient, file: Path) -> None:
    before = await read_prop(client, "/a.txt", dav("displayname"))
    assert before is not None
    assert before.text == "a.txt"
    response = await proppatch(
        client, "/a.txt", update(set_("<D:displayname>My file</D:displayname>"))
    )
    assert propstats(response).keys() == {200}
    got = await read_prop(client, "/a.txt", dav("displayname"))
    assert got is not None
    assert got.text == "My file"
    allprop = await client.request("PROPFIND", "/a.txt", headers={"Depth": "0"})
    ms = etree.fromstring(await allprop.read())
    names = ms.findall(f"{dav('response')}/{dav('propstat')}/{dav('prop')}/{dav('displayname')}")
    assert [n.text for n in names] == ["My file"]


async def test_removing_displayname_brings_back_the_name(client: TestClient, file: Path) -> None:
    await proppatch(client, "/a.txt", update(set_("<D:displayname>Mine</D:displayname>")))
    await proppatch(client, "/a.txt", update(remove("<D:displayname/>")))
    got = await read_prop(client, "/a.txt", dav("displayname"))
    assert got is not None
    assert got.text == "a.txt"


# -- bad requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:x>',
        b"garbage",
        b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Q:x/></D:prop></D:set>'
        b"</D:propertyupdate>",
    ],
    ids=["truncated", "not-xml", "unbound-prefix"],
)
async def test_malformed_xml_is_400_and_changes_nothing(
    client: TestClient, root: Path, file: Path, body: bytes
) -> None:
    before = snapshot(root)
    resp = await client.request("PROPPATCH", "/a.txt", data=body)
    assert resp.status == 400
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "body",
    [
        f'<D:propfind xmlns:D="DAV:"><D:prop><Z:x {Z}/></D:prop></D:propfind>'.encode(),
        f"<propertyupdate><set><prop><Z:x {Z}/></prop></set></propertyupdate>".encode(),
        b'<D:propertyupdate xmlns:D="DAV:"/>',
        b"",
    ],
    ids=["propfind", "no-namespace", "no-instruction", "no-body"],
)
async def test_a_body_that_is_not_a_propertyupdate_is_400(
    client: TestClient, root: Path, file: Path, body: bytes
) -> None:
    before = snapshot(root)
    resp = await client.request("PROPPATCH", "/a.txt", data=body)
    assert resp.status == 400
    assert snapshot(root) == before


async def test_doctype_is_400_and_changes_nothing(
    client: TestClient, root: Path, file: Path
) -> None:
    before = snapshot(root)
    body = (
        b'<?xml version="1.0"?><!DOCTYPE D:propertyupdate [<!ENTITY e "expanded">]>'
        b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:x xmlns:Z="urn:z">&e;</Z:x>'
        b"</D:prop></D:set></D:propertyupdate>"
    )
    resp = await client.request("PROPPATCH", "/a.txt", data=body)
    assert resp.status == 400
    assert snapshot(root) == before


async def test_missing_resource_is_404_and_creates_nothing(client: TestClient, root: Path) -> None:
    before = snapshot(root)
    resp = await client.request("PROPPATCH", "/nope.txt", data=update(set_(f"<Z:v {Z}>x</Z:v>")))
    assert resp.status == 404
    assert snapshot(root) == before


# -- dead properties and writes ------------------------------------------------------


async def test_dead_properties_survive_a_put_that_replaces_the_bytes(
    client: TestClient, file: Path
) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>kept</Z:v>")))
    put = await client.put("/a.txt", data=b"new bytes")
    assert put.status == 204
    assert file.read_bytes() == b"new bytes"
    got = await read_prop(client, "/a.txt", "{urn:z}v")
    assert got is not None
    assert got.text == "kept"


async def test_a_file_recreated_after_delete_has_no_dead_properties(
    client: TestClient, file: Path
) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>stale</Z:v>")))
    assert (await client.delete("/a.txt")).status == 204
    assert (await client.put("/a.txt", data=b"again")).status == 201
    assert await read_prop(client, "/a.txt", "{urn:z}v") is None


async def test_a_comment_in_a_hand_edited_property_file_is_no_property(
    client: TestClient, file: Path, root: Path
) -> None:
    await proppatch(client, "/a.txt", update(set_(f"<Z:v {Z}>kept</Z:v>")))
    (props,) = (root / ".davprops").iterdir()
    stored = props.read_bytes()
    props.write_bytes(stored.replace(b"<props>", b"<props><!-- edited by hand --><?pi x?>"))
    assert props.read_bytes() != stored
    got = await read_prop(client, "/a.txt", "{urn:z}v")
    assert got is not None and got.text == "kept"
    resp = await client.request("PROPFIND", "/a.txt", headers={"Depth": "0"})
    assert resp.status == 207
    assert b"edited by hand" not in await resp.read()
