"""The ``D:response`` elements of vCards in REPORT answers: CalDAV's renderer of indexed
items (ETags from the index, bodies from the cache) with ``CR:address-data`` as the data.
A card whose indexed version is the one asked for, asked for whole, is sent as stored
without being parsed."""

from __future__ import annotations

from typing import Any

from lxml import etree

from davserver.backends.base import Resource
from davserver.caldav.items import IndexedRenderer, Refused, Target
from davserver.caldav.store.layout import Place
from davserver.dav.context import Context
from davserver.dav.props import propstat
from davserver.runtime.threads import offload

from . import address_data
from .names import ADDRESS_DATA
from .services import settings, store

UNCONVERTIBLE = Refused(
    propstat(
        "<CR:address-data/>", 415,
        "<D:error><CR:supported-address-data-conversion/></D:error>",
    )
)  # fmt: skip
"""The address-data of a card that cannot be given in the version asked for."""


class CardRenderer(IndexedRenderer):
    """Renders the responses of vCards, with address-data when asked for."""

    data_name = ADDRESS_DATA
    others = False  # an href to anything but a vCard: 404

    def __init__(self, ctx: Context, root: etree._Element) -> None:
        super().__init__(ctx, root, store(ctx), settings(ctx).max_resource_size)

    def parse_data(self, element: etree._Element) -> address_data.AddressData:
        """A ``CR:address-data`` element."""
        return address_data.parse(element)

    def indexed(self, where: Place) -> bool:
        """vCards."""
        return where.kind == "item" and where.book is not None

    async def render_data(
        self,
        targets: list[Target],
        resources: list[Resource | None],
        bodies: list[bytes | None],
        parsed: list[Any],
    ) -> list[str | Refused | None]:
        """address-data, converted or partial as asked."""
        spec: address_data.AddressData | None = self.data
        if spec is None:
            return [None] * len(bodies)
        out: list[str | Refused | None] = [None] * len(bodies)
        work = []
        for i, ((_, book, name), res, body) in enumerate(
            zip(targets, resources, bodies, strict=True)
        ):
            if body is None or res is None:
                continue
            if not spec.props and self._stored_version(book, name, res) == spec.version:
                out[i] = address_data.wrap(body.decode("utf-8", "replace"))
            else:
                work.append(i)
        if work:
            done = await offload(
                lambda: [address_data.element(bodies[i] or b"", spec) for i in work]
            )
            for i, text in zip(work, done, strict=True):
                out[i] = text if text is not None else UNCONVERTIBLE
        return out

    def _stored_version(self, book: str | None, name: str, res: Resource) -> str | None:
        """The version of the card as the index knows it (None when it does not know this
        very card)."""
        items = self.store.index.cached(book) if book is not None else None
        item = items.get(name) if items is not None else None
        card = item.card if item is not None and item.etag == res.etag else None
        return card.version if card is not None else None
