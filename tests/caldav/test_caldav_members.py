"""A PROPFIND of Depth 1 on a calendar or an address book is answered from the index for
the properties the index knows (caldav/members.py): byte for byte what the general
renderer gives for each member, with no resource built per item; any other request is
listed and rendered as usual."""

from __future__ import annotations

import re

import pytest
from caldav_data import EVENTS, Cal, event, propfind_body
from carddav_data import CONTACTS, put_card_ok, vcard
from davserver.backends.base import Resource

from davserver.dav.props import PropRenderer

pytest_plugins = ("caldav_data.fixtures",)

D = "{DAV:}"
INDEXED = ("getetag", "getcontenttype", "getcontentlength", "getlastmodified",
           "resourcetype", "creationdate")  # fmt: skip
RESPONSE = re.compile(rb"<D:response>.*?</D:response>", re.S)
HREF = re.compile(rb"<D:href>(.*?)</D:href>")


def responses(body: bytes) -> list[bytes]:
    return RESPONSE.findall(body)


async def propfind(
    cal: Cal, path: str, names: tuple[str, ...], depth: str, **headers: str
) -> bytes:
    status, _, body = await cal.request(
        "PROPFIND", path, propfind_body(*(D + n for n in names)), Depth=depth, **headers
    )
    assert status == 207, body
    return body


def count_renderings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the resources the general renderer renders (each member, when listed)."""
    rendered: list[str] = []
    original = PropRenderer.render

    def render(self: PropRenderer, res: Resource) -> str:
        rendered.append(res.name)
        return original(self, res)

    monkeypatch.setattr(PropRenderer, "render", render)
    return rendered


async def assert_members_as_rendered_alone(
    cal: Cal, collection: str, names: tuple[str, ...], **headers: str
) -> list[bytes]:
    """Each member's response of a Depth 1 PROPFIND equals its Depth 0 PROPFIND's."""
    listed = responses(await propfind(cal, collection, names, "1", **headers))
    assert len(listed) > 1
    for member in listed[1:]:
        [link] = HREF.findall(member)
        [alone] = responses(await propfind(cal, link.decode(), names, "0", **headers))
        assert member == alone
    return listed[1:]


@pytest.mark.parametrize("prefer", [{}, {"Prefer": "return=minimal"}])
async def test_calendar_members_from_the_index_match_the_general_rendering(
    cal: Cal, monkeypatch: pytest.MonkeyPatch, prefer: dict[str, str]
) -> None:
    for name in ("plain.ics", "with space.ics", "üml&aut.ics", "b%25.ics"):
        await cal.put_ok(EVENTS + name.replace(" ", "%20").replace("%25", "%2525"),
                         event(name.encode().hex()))  # fmt: skip
    # An item placed behind the server's back, of no known type.
    (cal.folder() / "odd.unknowntype").write_bytes(b"not a calendar")
    await propfind(cal, EVENTS, ("getetag",), "1")  # the index finds it
    built = count_renderings(monkeypatch)
    for names in (("getetag",), INDEXED, ("getcontenttype", "getetag"), ("resourcetype",)):
        built.clear()
        listed = responses(await propfind(cal, EVENTS, names, "1", **prefer))
        assert len(listed) == 6 and built == ["calendar"], names
        await assert_members_as_rendered_alone(cal, EVENTS, names, **prefer)
    hrefs = [HREF.findall(r)[0] for r in listed[1:]]
    assert b"/caldav/calendars/user/calendar/with%20space.ics" in hrefs
    assert b"/caldav/calendars/user/calendar/%C3%BCml%26aut.ics" in hrefs


async def test_other_properties_are_listed_as_usual(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cal.put_ok(f"{EVENTS}one.ics", event("one"))
    await cal.put_ok(f"{EVENTS}two.ics", event("two"))
    built = count_renderings(monkeypatch)
    for names in (("getetag", "displayname"), ("getetag", "lockdiscovery")):
        built.clear()
        await assert_members_as_rendered_alone(cal, EVENTS, names)
        assert {"one.ics", "two.ics"} <= set(built), names
    # A collection inside a calendar is listed (it is no item of the index).
    (cal.folder() / "inner").mkdir()
    built.clear()
    listed = responses(await propfind(cal, EVENTS, ("getetag",), "1"))
    assert len(listed) == 4 and {"one.ics", "two.ics"} <= set(built)


async def test_address_book_members_from_the_index(
    cal: Cal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        await put_card_ok(cal, f"{CONTACTS}c{i}.vcf", vcard(f"c{i}", f"Card {i}"))
    built = count_renderings(monkeypatch)
    members = await assert_members_as_rendered_alone(cal, CONTACTS, INDEXED)
    assert len(members) == 3
    built.clear()
    await propfind(cal, CONTACTS, ("getetag",), "1")
    assert built == ["contacts"]
