"""Property tests against a real server process, with the generated vCards of the vCard
domain's own property tests (tests/vcard/test_vcard_property.py: 3.0 and 4.0, folded
lines, quoted and repeated parameters, groups, non-ASCII, photos):

- every card round-trips byte for byte: GET and an addressbook-multiget in the card's own
  version give back the bytes the PUT sent, under the ETag the PUT answered;
- an addressbook-query answers exactly the cards that a direct evaluation of its filter
  (davserver.vcard.matches on the stored bytes) lets through, whether the index's
  summaries answer it or the cards are read.
"""

from __future__ import annotations

import hashlib
import urllib.request
import uuid
from typing import Any

from caldav_data import HEAD, parse_multistatus
from carddav_data import CONTACTS, CR, CR_NS, NS
from helpers import ServerProcess
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import etree
from test_vcard_property import SETTINGS, cards, filters

from davserver.vcard import Filter, matches, parse

BOOKS = "/caldav/addressbooks/user/"


def request(server: ServerProcess, method: str, path: str, body: bytes | None = None,
            **headers: str) -> tuple[int, Any, bytes]:  # fmt: skip
    req = urllib.request.Request(
        server.url + path, data=body, method=method,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
    except TimeoutError:
        raise AssertionError(f"{method} {path} {body!r}") from None


def name_of(data: bytes) -> str:
    """A card's name from its UID: a card generated again with the same UID replaces it."""
    return hashlib.sha1(parse(data).uid.encode()).hexdigest() + ".vcf"


def filter_xml(flt: Filter) -> bytes | None:
    """The ``CR:filter`` element of ``flt`` (None when a text cannot be written in XML)."""
    E = f"{{{CR_NS}}}"
    root = etree.Element(f"{E}addressbook-query", nsmap={"D": "DAV:", "CR": CR_NS})
    etree.SubElement(etree.SubElement(root, "{DAV:}prop"), "{DAV:}getetag")
    top = etree.SubElement(root, f"{E}filter", test=flt.test)
    try:
        for pf in flt.prop_filters:
            p = etree.SubElement(top, f"{E}prop-filter", name=pf.name, test=pf.test)
            if pf.is_not_defined:
                etree.SubElement(p, f"{E}is-not-defined")
            for tm in pf.text_matches:
                t = etree.SubElement(
                    p, f"{E}text-match", collation=tm.collation, **{"match-type": tm.match_type},
                    **{"negate-condition": "yes" if tm.negate else "no"},
                )  # fmt: skip
                t.text = tm.text
            for param in pf.param_filters:
                q = etree.SubElement(p, f"{E}param-filter", name=param.name)
                if param.is_not_defined:
                    etree.SubElement(q, f"{E}is-not-defined")
                if param.text_match is not None:
                    t = etree.SubElement(
                        q, f"{E}text-match", collation=param.text_match.collation,
                        **{"match-type": param.text_match.match_type},
                        **{"negate-condition": "yes" if param.text_match.negate else "no"},
                    )  # fmt: skip
                    t.text = param.text_match.text
    except ValueError:  # a control character lxml will not write
        return None
    text = etree.tostring(root)
    # A carriage return in a text would reach the server as a line feed.
    return None if b"\r" in text else text


def test_cards_round_trip_byte_for_byte(server_process: Any) -> None:
    server = server_process("--log-level", "WARNING")  # its output is a pipe nobody reads

    @SETTINGS
    @given(cards())
    def check(generated: tuple[object, bytes]) -> None:
        _, data = generated
        path = CONTACTS + name_of(data)
        status, headers, body = request(server, "PUT", path, data, Content_Type="text/vcard")
        assert status in (201, 204), body
        etag = headers["ETag"]
        status, headers, body = request(server, "GET", path)
        assert (status, body, headers["ETag"]) == (200, data, etag)
        version = parse(data).version
        report = (
            f"{HEAD}<CR:addressbook-multiget {NS}><D:prop><D:getetag/><CR:address-data "
            f'version="{version}"/></D:prop><D:href>{path}</D:href></CR:addressbook-multiget>'
        ).encode()
        status, _, body = request(server, "REPORT", CONTACTS, report, Depth="1",
                                  Content_Type="application/xml")  # fmt: skip
        assert status == 207
        [r] = parse_multistatus(body).responses
        assert r.value("{DAV:}getetag") == etag
        assert r.value(f"{CR}address-data").encode() == data

    check()


def test_addressbook_query_equals_a_direct_evaluation(server_process: Any) -> None:
    server = server_process("--log-level", "WARNING")  # its output is a pipe nobody reads

    @SETTINGS
    @given(st.data())
    def check(draw: st.DataObject) -> None:
        generated = draw.draw(st.lists(cards(), min_size=1, max_size=5))
        model = draw.draw(st.sampled_from([m for m, _ in generated]))
        flt = draw.draw(filters(model, draw.draw(st.booleans())))
        body = filter_xml(flt)
        assume(body is not None)
        book = f"{BOOKS}{uuid.uuid4().hex}/"
        assert request(server, "MKCOL", book)[0] == 201
        stored: dict[str, bytes] = {}
        for _, data in generated:
            name = name_of(data)
            status, _, answer = request(server, "PUT", book + name, data, Content_Type="text/vcard")
            assert status in (201, 204), answer
            stored[name] = data
        status, _, answer = request(server, "REPORT", book, body, Depth="1",
                                    Content_Type="application/xml")  # fmt: skip
        assert status == 207, answer
        got = {r.href.rpartition("/")[2] for r in parse_multistatus(answer).responses}
        assert got == {name for name, data in stored.items() if matches(data, flt)}
        assert request(server, "DELETE", book)[0] == 204

    check()
