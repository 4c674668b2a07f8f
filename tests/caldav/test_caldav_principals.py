"""Principals (RFC 3744 §9, RFC 5397): principal-property-search, principal-search-property-set
and principal-match at the server root, the principals and a principal; whom a request may
find (the mount's ``principal_search``), and that it learns nothing of the others; the
caldav library's principal search between two accounts on both backends; and
current-user-privilege-set, supported-privilege-set and a read-only acl that say what a
request may do, checked against what the server then lets it do."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import caldav
import pytest
from caldav_data import (
    CS,
    HEAD,
    NSDECL,
    C,
    Cal,
    D,
    caldav_config,
    event,
    parse_multistatus,
)
from helpers import snapshot

from davserver.app import create_app
from davserver.auth import htpasswd
from davserver.config import AccessConfig, AuthConfig, ConfigError, load

PASSWORDS = {"ann": "ann-pw", "bob": "bob-pw"}
PRINCIPALS = "/caldav/principals/"
ANN = f"{PRINCIPALS}ann/"
BOB = f"{PRINCIPALS}bob/"
CUPS = f"{D}current-user-privilege-set"
MakeServer = Callable[..., Awaitable[Cal]]


def login(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def make_server(aiohttp_client: Any, tmp_path: Path) -> MakeServer:
    """A server with the accounts ann and bob; caldav mount options as keywords."""
    accounts = tmp_path / "users"
    htpasswd.write(accounts, {u: htpasswd.hash_password(p) for u, p in PASSWORDS.items()})

    async def make(
        backend: str = "filesystem",
        groups: dict[str, tuple[str, ...]] | None = None,
        **options: Any,
    ) -> Cal:
        config = caldav_config(tmp_path, backend=backend, **options)
        config = dataclasses.replace(
            config, auth=AuthConfig(htpasswd=accounts), groups=groups or {}
        )
        return Cal(await aiohttp_client(create_app(config)), tmp_path, backend)

    return make


def search(
    *criteria: tuple[str, str],
    test: str | None = None,
    apply: bool = False,
    match_type: str | None = None,
    props: str = "<D:displayname/><C:calendar-home-set/><D:current-user-privilege-set/>",
) -> str:
    """A principal-property-search body: (property element, match) criteria."""
    how = f' match-type="{match_type}"' if match_type else ""
    parts = "".join(
        f"<D:property-search><D:prop>{prop}</D:prop><D:match{how}>{text}</D:match>"
        "</D:property-search>"
        for prop, text in criteria
    )
    attribute = f' test="{test}"' if test else ""
    tail = "<D:apply-to-principal-collection-set/>" if apply else ""
    return (
        f"{HEAD}<D:principal-property-search {NSDECL}{attribute}>{parts}"
        f"<D:prop>{props}</D:prop>{tail}</D:principal-property-search>"
    )


async def found(cal: Cal, path: str, body: str, user: str | None = "ann") -> list[str]:
    """The hrefs a search answers, in order."""
    headers = login(user) if user else {}
    ms = await cal.report(path, body, depth="0", **headers)
    return [r.href for r in ms.responses]


NAME = "<D:displayname/>"


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_a_user_finds_another_by_name_address_and_email(
    make_server: MakeServer, backend: str
) -> None:
    cal = await make_server(backend)
    assert await found(cal, PRINCIPALS, search((NAME, "BO"))) == [BOB]
    ms = await cal.report(PRINCIPALS, search((NAME, "bob")), depth="0", **login("ann"))
    bob = ms.responses[0]
    assert bob.value(f"{D}displayname") == "bob"
    assert bob.ok(f"{C}calendar-home-set").findtext(f"{D}href") == "/caldav/calendars/bob/"
    # ann may not change (nor even read) bob's principal: her privileges there are none.
    assert list(bob.ok(CUPS)) == []
    address = "<C:calendar-user-address-set/>"
    assert await found(cal, PRINCIPALS, search((address, "mailto:bob@localhost"),
                                               match_type="equals")) == [BOB]  # fmt: skip
    assert await found(cal, PRINCIPALS, search((address, "mailto:bo"), match_type="equals")) == []
    assert await found(cal, PRINCIPALS, search((address, "MAILTO:B"), match_type="starts-with")) == [BOB]  # fmt: skip
    assert await found(cal, PRINCIPALS, search(("<CS:email-address-set/>", "Bob@Local"))) == [BOB]


async def test_the_search_answers_at_the_server_root_the_principals_and_a_principal(
    make_server: MakeServer,
) -> None:
    cal = await make_server()
    body = search((NAME, "b"))
    # "/" is a WebDAV mount here: its REPORTs go to the CalDAV mount's root.
    for path in ("/", "/caldav/", PRINCIPALS):
        assert await found(cal, path, body) == [BOB], path
    # A principal searches itself, or with apply-to-principal-collection-set every principal.
    assert await found(cal, ANN, body) == []
    assert await found(cal, ANN, search((NAME, "ann"))) == [ANN]
    assert await found(cal, ANN, search((NAME, "b"), apply=True)) == [BOB]
    # Below the principals there are none, unless the search applies to them.
    assert await found(cal, "/caldav/calendars/ann/", body) == []
    assert await found(cal, "/caldav/calendars/ann/", search((NAME, "b"), apply=True)) == [BOB]


async def test_criteria_combine_with_allof_or_anyof(make_server: MakeServer) -> None:
    cal = await make_server()
    both = ((NAME, "ann"), ("<CS:email-address-set/>", "bob@"))
    assert await found(cal, PRINCIPALS, search(*both)) == []
    assert await found(cal, PRINCIPALS, search(*both, test="allof")) == []
    assert await found(cal, PRINCIPALS, search(*both, test="anyof")) == [ANN, BOB]
    # Without criteria (the caldav library's "every principal"): all it may find.
    assert await found(cal, PRINCIPALS, search()) == [ANN, BOB, f"{PRINCIPALS}user/"]


async def test_principal_search_self_finds_nobody_else_and_tells_nothing(
    make_server: MakeServer,
) -> None:
    cal = await make_server(principal_search="self")
    assert await found(cal, PRINCIPALS, search()) == [ANN]
    assert await found(cal, PRINCIPALS, search((NAME, "ann"))) == [ANN]
    # Searching for a user who exists answers exactly what searching for nobody does.
    answers = []
    for who in ("bob", "nobody"):
        status, _, data = await cal.request(
            "REPORT", PRINCIPALS, search((NAME, who)), Depth="0", **login("ann")
        )
        answers.append((status, data))
    assert answers[0] == answers[1]
    assert answers[0][0] == 207
    assert parse_multistatus(answers[0][1]).responses == []


async def test_anonymous_requests_find_only_their_own_principal_unless_everyone_may(
    make_server: MakeServer, tmp_path: Path
) -> None:
    reader = AccessConfig(anonymous="read-only")
    cal = await make_server(access=reader)
    # Anonymous requests act as the default user: they find its principal alone.
    assert await found(cal, PRINCIPALS, search(), user=None) == [f"{PRINCIPALS}user/"]
    assert await found(cal, PRINCIPALS, search((NAME, "ann")), user=None) == []
    assert await found(cal, PRINCIPALS, search(), user="bob") == [ANN, BOB, f"{PRINCIPALS}user/"]
    open_cal = await make_server(access=reader, principal_search="everyone")
    assert await found(open_cal, PRINCIPALS, search((NAME, "ann")), user=None) == [ANN]


async def test_bad_searches_are_400_and_change_nothing(
    make_server: MakeServer, tmp_path: Path
) -> None:
    cal = await make_server()
    await cal.put_ok("/caldav/calendars/ann/calendar/a.ics", event("a@x"), **login("ann"))
    before = snapshot(tmp_path)
    bad = [
        (search((NAME, "b")), {"Depth": "1"}),
        (search((NAME, "b"), match_type="sounds-like"), {}),
        (search((NAME, "b"), test="sometimes"), {}),
        (f"{HEAD}<D:principal-property-search {NSDECL}><D:property-search><D:prop>{NAME}"
         "</D:prop></D:property-search></D:principal-property-search>", {}),
        (f"{HEAD}<D:principal-property-search {NSDECL}><D:property-search><D:prop/>"
         "<D:match>x</D:match></D:property-search></D:principal-property-search>", {}),
        (f"{HEAD}<D:principal-match {NSDECL}><D:principal-property/></D:principal-match>", {}),
        (f"{HEAD}<D:principal-search-property-set {NSDECL}/>", {"Depth": "infinity"}),
    ]  # fmt: skip
    for body, headers in bad:
        status, _, data = await cal.request("REPORT", PRINCIPALS, body, **headers, **login("ann"))
        assert status == 400, (body, data)
    assert snapshot(tmp_path) == before


async def test_the_search_property_set_names_what_tells_users_apart(
    make_server: MakeServer,
) -> None:
    cal = await make_server()
    body = f"{HEAD}<D:principal-search-property-set {NSDECL}/>"
    for path in ("/", "/caldav/", PRINCIPALS, ANN):
        status, headers, data = await cal.request("REPORT", path, body, Depth="0", **login("ann"))
        assert status == 200, path
        assert headers["Content-Type"].startswith("application/xml")
        root = parse_xml(data)
        assert root.tag == f"{D}principal-search-property-set"
        names = [p[0].tag for p in root.iter(f"{D}prop")]
        assert names == [
            f"{D}displayname",
            f"{C}calendar-user-address-set",
            f"{CS}email-address-set",
        ]
        assert all(d.text for d in root.iter(f"{D}description"))


def parse_xml(data: bytes) -> Any:
    from lxml import etree

    return etree.fromstring(data)


async def test_principal_match_finds_the_own_principal_and_what_it_owns(
    make_server: MakeServer,
) -> None:
    cal = await make_server()
    await cal.put_ok("/caldav/calendars/ann/calendar/a.ics", event("a@x"), **login("ann"))
    await cal.put_ok("/caldav/calendars/bob/calendar/b.ics", event("b@x"), **login("bob"))
    me = f"{HEAD}<D:principal-match {NSDECL}><D:self/><D:prop>{NAME}</D:prop></D:principal-match>"
    for path in ("/caldav/", PRINCIPALS, ANN):
        ms = await cal.report(path, me, depth="0", **login("ann"))
        assert [r.href for r in ms.responses] == [ANN], path
        assert ms.responses[0].value(f"{D}displayname") == "ann"
    assert await found(cal, "/caldav/calendars/ann/", me) == []
    owned = (
        f"{HEAD}<D:principal-match {NSDECL}><D:principal-property><D:owner/>"
        "</D:principal-property><D:prop><D:getetag/></D:prop></D:principal-match>"
    )
    hrefs = set(await found(cal, "/caldav/calendars/ann/", owned))
    assert "/caldav/calendars/ann/calendar/a.ics" in hrefs
    assert {"/caldav/calendars/ann/", "/caldav/calendars/ann/calendar/"} <= hrefs
    assert not any("/bob/" in h for h in hrefs)
    # From the shared root: only what ann may see, and nothing of bob's.
    everything = await found(cal, "/caldav/", owned)
    assert "/caldav/calendars/ann/calendar/a.ics" in everything
    assert not any("bob" in h for h in everything)
    assert await found(cal, "/caldav/", owned, user="bob") != everything


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_the_caldav_library_searches_principals_between_two_accounts(
    make_server: MakeServer, backend: str
) -> None:
    cal = await make_server(backend)
    base = cal.url  # the server's address: a WebDAV mount at "/"

    def run() -> tuple[list[Any], list[str], list[str]]:
        with caldav.DAVClient(url=base, username="ann", password="ann-pw") as client:
            bob = client.search_principals(name="bob")
            everyone = [p.get_display_name() for p in client.search_principals()]
            # bob's calendar home, as the library found it, is bob's.
            homes = [str(p.calendar_home_set.url) for p in bob]
            return bob, everyone, homes

    bob, everyone, homes = await asyncio.to_thread(run)
    assert [str(p.url) for p in bob] == [base.rstrip("/") + BOB]
    assert homes == [base.rstrip("/") + "/caldav/calendars/bob/"]
    assert sorted(everyone) == ["ann", "bob", "user"]

    def as_bob() -> list[str]:
        with caldav.DAVClient(url=base + "caldav/", username="bob", password="bob-pw") as client:
            return [p.get_display_name() for p in client.search_principals(name="an")]

    assert await asyncio.to_thread(as_bob) == ["ann"]


# -- privileges ------------------------------------------------------------------------------


def privileges(element: Any) -> set[str]:
    return {p[0].tag.removeprefix(D) for p in element.iter(f"{D}privilege")}


async def may_write_props(cal: Cal, path: str, user: str) -> bool:
    body = (
        f'{HEAD}<D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:x"><D:set><D:prop>'
        "<X:note>n</X:note></D:prop></D:set></D:propertyupdate>"
    )
    status, _, data = await cal.request("PROPPATCH", path, body, **login(user))
    if status != 207:
        return False
    return parse_multistatus(data).responses[0].props["{urn:x}note"].status == 200


READ = {"read", "read-acl", "read-current-user-privilege-set"}
WRITE = READ | {"write", "write-properties", "write-content", "unlock"}


async def test_privileges_are_what_the_server_lets_the_user_do(make_server: MakeServer) -> None:
    cal = await make_server()
    item = "/caldav/calendars/ann/calendar/a.ics"
    await cal.put_ok(item, event("a@x"), **login("ann"))
    expected = {
        "/caldav/": READ,
        PRINCIPALS: READ,
        ANN: READ,
        "/caldav/calendars/": READ,
        "/caldav/calendars/ann/": WRITE | {"bind", "unbind"},
        "/caldav/calendars/ann/calendar/": WRITE | {"bind", "unbind"},
        item: WRITE,
    }
    for path, want in expected.items():
        prop = (await cal.propfind(path, CUPS, **login("ann"))).responses[0].ok(CUPS)
        granted = privileges(prop)
        assert granted == want, path
        assert ("write-properties" in granted) == await may_write_props(cal, path, "ann"), path
    # Another user's tree: nothing (and PROPFIND there is refused anyway).
    status, _, _ = await cal.request("PROPFIND", BOB, Depth="0", **login("ann"))
    assert status == 403


async def test_read_only_access_grants_reading_only(
    make_server: MakeServer, tmp_path: Path
) -> None:
    cal = await make_server(access=AccessConfig(authenticated="read-only"))
    calendar = "/caldav/calendars/ann/calendar/"
    prop = (await cal.propfind(calendar, CUPS, **login("ann"))).responses[0].ok(CUPS)
    assert privileges(prop) == READ
    before = snapshot(tmp_path / "calendars")
    status, _, _ = await cal.put(f"{calendar}a.ics", event("a@x"), **login("ann"))
    assert status == 403
    assert not await may_write_props(cal, calendar, "ann")
    assert snapshot(tmp_path / "calendars") == before


async def test_a_group_member_sees_the_level_of_its_group(
    make_server: MakeServer, tmp_path: Path
) -> None:
    access = AccessConfig(authenticated="read-only", groups={"editors": "read-write"})
    cal = await make_server(access=access, groups={"editors": ("ann",)})
    for user, want in (("ann", WRITE | {"bind", "unbind"}), ("bob", READ)):
        calendar = f"/caldav/calendars/{user}/calendar/"
        prop = (await cal.propfind(calendar, CUPS, **login(user))).responses[0].ok(CUPS)
        assert privileges(prop) == want, user
        assert await may_write_props(cal, calendar, user) == (user == "ann"), user
    before = snapshot(tmp_path / "calendars")
    status, _, _ = await cal.put(
        "/caldav/calendars/bob/calendar/b.ics", event("b@x"), **login("bob")
    )
    assert status == 403
    assert snapshot(tmp_path / "calendars") == before
    await cal.put_ok("/caldav/calendars/ann/calendar/a.ics", event("a@x"), **login("ann"))


async def test_supported_privileges_and_a_read_only_acl(
    make_server: MakeServer, tmp_path: Path
) -> None:
    cal = await make_server(access=AccessConfig(anonymous="read-only"))
    calendar = "/caldav/calendars/ann/calendar/"
    r = (await cal.propfind(calendar, f"{D}supported-privilege-set", f"{D}acl",
                            **login("ann"))).responses[0]  # fmt: skip
    supported = r.ok(f"{D}supported-privilege-set")
    assert {"all", "read", "write", "write-properties", "write-content", "bind", "unbind",
            "unlock", "read-acl", "read-current-user-privilege-set"} == privileges(supported)  # fmt: skip
    aces = r.ok(f"{D}acl").findall(f"{D}ace")
    # ann's tree is hers: one ACE, to her principal, protected.
    assert len(aces) == 1
    assert aces[0].findtext(f"{D}principal/{D}href") == ANN
    assert "write" in privileges(aces[0].find(f"{D}grant"))
    assert aces[0].find(f"{D}protected") is not None
    # The default user's tree is also open to anonymous requests, read-only.
    r = (await cal.propfind("/caldav/calendars/user/calendar/", f"{D}acl", CUPS)).responses[0]
    aces = r.ok(f"{D}acl").findall(f"{D}ace")
    assert [a.find(f"{D}principal")[0].tag for a in aces] == [f"{D}href", f"{D}unauthenticated"]
    assert privileges(aces[1].find(f"{D}grant")) == READ
    assert privileges(r.ok(CUPS)) == READ
    # The ACL cannot be changed: not by ACL (405), nor by PROPPATCH (protected).
    before = snapshot(tmp_path)
    acl = f'{HEAD}<D:acl xmlns:D="DAV:"><D:ace><D:principal><D:all/></D:principal></D:ace></D:acl>'
    status, headers, _ = await cal.request("ACL", calendar, acl, **login("ann"))
    assert status == 405
    assert "ACL" not in headers["Allow"]
    update = (
        f'{HEAD}<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:acl/>'
        "<D:current-user-privilege-set/></D:prop></D:set></D:propertyupdate>"
    )
    ms = parse_multistatus((await cal.request("PROPPATCH", calendar, update, **login("ann")))[2])
    assert {p.status for p in ms.responses[0].props.values()} == {403}
    assert snapshot(tmp_path) == before


async def test_a_webdav_tree_reports_privileges_too(make_server: MakeServer) -> None:
    cal = await make_server()
    prop = (await cal.propfind("/", CUPS, **login("ann"))).responses[0].ok(CUPS)
    assert privileges(prop) == WRITE | {"bind", "unbind"}


def test_principal_search_must_be_a_known_rule(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[mounts]]\npath = "/c"\ntype = "caldav"\nroot = "c"\nprincipal_search = "friends"\n'
    )
    with pytest.raises(ConfigError, match="principal_search"):
        load(path)
