"""An address book in a browser: its page links the whole address book as one .vcf file,
each card as the client stored it."""

from __future__ import annotations

import pytest
from caldav_data import MakeCal
from carddav_data import CONTACTS, put_card_ok, vcard

pytest_plugins = ("caldav_data.fixtures",)


@pytest.mark.parametrize("backend", ["filesystem", "git"])
async def test_an_address_book_downloads_whole(make_cal: MakeCal, backend: str) -> None:
    cal = await make_cal(backend=backend)
    cards = {
        "ann.vcf": vcard("ann@x", "Ann Example"),
        # A card stored without a line end after END:VCARD still ends its own line.
        "zoe.vcf": vcard("zoe@x", "Zoë Müller").rstrip(b"\r\n"),
    }
    for name, body in cards.items():
        await put_card_ok(cal, CONTACTS + name, body)
    page = await (await cal.client.get(CONTACTS)).text()
    assert 'href="/caldav/addressbooks/user/contacts/?export"' in page
    assert "contacts.vcf" in page
    resp = await cal.client.get(CONTACTS + "?export")
    assert resp.status == 200 and resp.content_type == "text/vcard"
    assert "contacts.vcf" in resp.headers["Content-Disposition"]
    data = await resp.read()
    assert data.count(b"BEGIN:VCARD") == 2 and data.count(b"END:VCARD\r\n") == 2
    for body in cards.values():
        assert body.rstrip(b"\r\n") in data
    # The home is no address book: just its page.
    home = await cal.client.get("/caldav/addressbooks/user/?export")
    assert home.content_type == "text/html"
