"""The live properties CardDAV adds (RFC 6352 §6.2, §7.1, §8.3.1): the address-book home of
a principal, and the properties of address books. Each renders only where it applies
(None elsewhere), so the CalDAV renderers of the same names answer for the rest."""

from __future__ import annotations

from davserver.backends.base import Resource
from davserver.caldav.props import supported_reports
from davserver.caldav.store.layout import ADDRESSBOOKS, place
from davserver.dav.paths import href
from davserver.dav.props import LiveRenderer, PropRenderer
from davserver.vcard import COLLATIONS, VERSIONS

from .names import VCARD, cr

REPORTS = ("CR:addressbook-multiget", "CR:addressbook-query", "D:sync-collection")
ADDRESSBOOK_HOME_SET = cr("addressbook-home-set")
SUPPORTED_ADDRESS_DATA = (
    "<CR:supported-address-data>"
    + "".join(f'<CR:address-data-type content-type="{VCARD}" version="{v}"/>' for v in VERSIONS)
    + "</CR:supported-address-data>"
)
SUPPORTED_COLLATIONS = (
    "<CR:supported-collation-set>"
    + "".join(f"<CR:supported-collation>{name}</CR:supported-collation>" for name in COLLATIONS)
    + "</CR:supported-collation-set>"
)


def is_book(res: Resource) -> bool:
    """Whether ``res`` is an address book."""
    return res.is_collection and place(res.path).kind == "addressbook"


def _home_set(prefix: str, user: str) -> str:
    return (
        f"<CR:addressbook-home-set><D:href>{href(prefix, f'{ADDRESSBOOKS}/{user}', True)}"
        "</D:href></CR:addressbook-home-set>"
    )


def home_set(prefix: str, user: str, *, by_resource: bool = False) -> LiveRenderer:
    """``CR:addressbook-home-set`` of ``user``'s principal (answered everywhere, as
    CalDAV's calendar-home-set is, so that discovery works from any URL); with
    ``by_resource``, a principal of this tree answers its own."""
    element = _home_set(prefix, user)

    def render(r: PropRenderer, res: Resource) -> str:
        where = place(res.path) if by_resource else None
        if where is not None and where.kind == "principal" and where.user:
            return _home_set(prefix, where.user)
        return element

    return render


def live_table(prefix: str, user: str, max_resource_size: int) -> dict[str, LiveRenderer]:
    """The live properties CardDAV adds to a mount at ``prefix``, for requests of ``user``."""

    def on_books(value: str) -> LiveRenderer:
        def render(r: PropRenderer, res: Resource) -> str | None:
            return value if is_book(res) else None

        return render

    def resourcetype(r: PropRenderer, res: Resource) -> str | None:
        if is_book(res):
            return "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
        return None

    def reports(r: PropRenderer, res: Resource) -> str | None:
        where = place(res.path)
        if where.space != ADDRESSBOOKS or not res.is_collection:
            return None
        # sync-collection and addressbook-query answer on address books only.
        return supported_reports(REPORTS if where.kind == "addressbook" else REPORTS[:1])

    return {
        ADDRESSBOOK_HOME_SET: home_set(prefix, user, by_resource=True),
        "{DAV:}resourcetype": resourcetype,
        "{DAV:}supported-report-set": reports,
        cr("supported-address-data"): on_books(SUPPORTED_ADDRESS_DATA),
        cr("supported-collation-set"): on_books(SUPPORTED_COLLATIONS),
        cr("max-resource-size"): on_books(
            f"<CR:max-resource-size>{max_resource_size}</CR:max-resource-size>"
        ),
    }
