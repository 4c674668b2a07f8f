"""Shared helpers of the CardDAV tests (tests/carddav/test_carddav_*.py): vCards to store
and the places of the embedded default's layout. The server and its client are CalDAV's
(caldav_data: the ``cal`` and ``make_cal`` fixtures, ``Cal``), since address books live
in the same ``caldav`` mount."""

from __future__ import annotations

from pathlib import Path

from caldav_data import HEAD, PREFIX, USER, Cal

CR = "{urn:ietf:params:xml:ns:carddav}"
CR_NS = "urn:ietf:params:xml:ns:carddav"
NS = f'xmlns:D="DAV:" xmlns:CR="{CR_NS}" xmlns:CS="http://calendarserver.org/ns/"'
BOOKS = f"{PREFIX}/addressbooks/"
BOOK_HOME = f"{BOOKS}{USER}/"
CONTACTS = f"{BOOK_HOME}contacts/"
VCF = "text/vcard; charset=utf-8"


def vcard(uid: str, fn: str = "Ann Example", *extra: str, version: str = "3.0") -> bytes:
    """A vCard with CRLF line ends."""
    lines = ["BEGIN:VCARD", f"VERSION:{version}", f"UID:{uid}", f"FN:{fn}", *extra, "END:VCARD"]
    return ("\r\n".join(lines) + "\r\n").encode()


def books_folder(cal: Cal, book: str = "contacts", user: str = USER) -> Path:
    """Where an address book's cards lie on disk (filesystem backend)."""
    return cal.tmp_path / "calendars" / ".addressbooks" / user / book


async def put_card(cal: Cal, path: str, data: bytes, **headers: str) -> tuple[int, object, bytes]:
    """PUT a vCard; the status, headers and body of the answer."""
    return await cal.request("PUT", path, data, Content_Type=VCF, **headers)


async def put_card_ok(cal: Cal, path: str, data: bytes, **headers: str) -> str:
    """PUT a vCard that must be stored (201 or 204); its ETag."""
    status, hdrs, body = await put_card(cal, path, data, **headers)
    assert status in (201, 204), (status, body)
    return hdrs["ETag"]  # type: ignore[index]


def multiget_body(hrefs: list[str], data: str = "<CR:address-data/>") -> str:
    """An addressbook-multiget of ``hrefs`` asking for getetag and ``data``."""
    links = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        f"{HEAD}<CR:addressbook-multiget {NS}><D:prop><D:getetag/>{data}</D:prop>"
        f"{links}</CR:addressbook-multiget>"
    )


def query_body(filters: str, *, test: str = "anyof", limit: int | None = None,
               data: str = "") -> str:  # fmt: skip
    """An addressbook-query with a filter made of ``filters`` (prop-filter elements)."""
    lim = f"<CR:limit><CR:nresults>{limit}</CR:nresults></CR:limit>" if limit is not None else ""
    return (
        f"{HEAD}<CR:addressbook-query {NS}><D:prop><D:getetag/>{data}</D:prop>"
        f'<CR:filter test="{test}">{filters}</CR:filter>{lim}</CR:addressbook-query>'
    )


def names(hrefs: object) -> set[str]:
    """The last segments of the hrefs of a multistatus (its responses' names)."""
    return {r.href.rstrip("/").rpartition("/")[2] for r in hrefs.responses}  # type: ignore[attr-defined]
