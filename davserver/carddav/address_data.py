"""The ``CR:address-data`` a REPORT asks for (RFC 6352 §10.4): the request element read into
an :class:`AddressData`, and the answer's element for each card.

The version: an element that names one gets every card in it, converted where it is
stored in the other (a card that cannot be converted faithfully is answered with
``supported-address-data-conversion``, not sent half right). An element without one
asks, by the RFC's DTD, for vCard 3.0, what Apple's clients read (SabreDAV does the
same): a 4.0 card is converted when it can be and sent as stored when it cannot, since
the client did not insist on a version.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from davserver import vcard
from davserver.dav.errors import DAVError
from davserver.dav.xml import escape

from .names import VCARD, cr

DEFAULT_VERSION = "3.0"
"""The version an address-data without a ``version`` attribute asks for (RFC 6352 §10.4)."""
CONVERSION = cr("supported-address-data-conversion")


@dataclass(frozen=True, slots=True)
class AddressData:
    """What an address-data element asks of each card."""

    version: str = DEFAULT_VERSION
    explicit: bool = False
    """Whether the request named the version (else a failed conversion sends the card as
    stored)."""
    props: tuple[vcard.PropRequest, ...] = ()
    """The properties asked for (none: all of them)."""


def parse(el: etree._Element) -> AddressData:
    """Read a ``CR:address-data`` element; 403 ``supported-address-data`` for a media
    type or version the server does not give, 400 for a prop without a name."""
    media = el.get("content-type", VCARD).split(";")[0].strip().lower()
    version = el.get("version")
    if media != VCARD or (version is not None and version not in vcard.VERSIONS):
        raise DAVError(
            403, f"address-data {media} {version or ''}", condition=cr("supported-address-data")
        )
    props = []
    if el.find(cr("allprop")) is None:
        for prop in el.iterfind(cr("prop")):
            name = prop.get("name", "").strip()
            if not name:
                raise DAVError(400, "an address-data prop without a name")
            props.append(vcard.PropRequest(name, prop.get("novalue", "no") == "yes"))
    return AddressData(version or DEFAULT_VERSION, version is not None, tuple(props))


def text(data: bytes, spec: AddressData) -> str:
    """The card's text as asked (CPU work: off the event loop). Raises
    :class:`~davserver.vcard.ConversionError` when a version asked for explicitly cannot
    be given; a stored file that is not a valid card is sent as stored."""
    try:
        card = vcard.parse(data)
    except vcard.VCardError:
        return data.decode("utf-8", "replace")
    if card.version != spec.version:
        try:
            card = vcard.convert(card, spec.version)
        except vcard.ConversionError:
            if spec.explicit:
                raise
    if not spec.props and card.data is data:
        return data.decode()
    return vcard.partial(card, spec.props).decode()


def wrap(card: str) -> str:
    """The ``CR:address-data`` element holding ``card``. Carriage returns are written as
    character references: an XML parser turns a literal CRLF into LF, and the client is to
    read the very bytes that were stored."""
    return f"<CR:address-data>{escape(card).replace(chr(13), '&#13;')}</CR:address-data>"


def element(data: bytes, spec: AddressData) -> str | None:
    """The ``CR:address-data`` element of a card; None when the card cannot be given in
    the version asked for."""
    try:
        return wrap(text(data, spec))
    except vcard.ConversionError:
        return None
