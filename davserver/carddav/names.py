"""The CardDAV namespace and the names used across the package."""

CR = "urn:ietf:params:xml:ns:carddav"
VCARD = "text/vcard"
"""The media type of vCards (RFC 6350 §10.1)."""


def cr(local: str) -> str:
    """A Clark name in the CardDAV namespace."""
    return f"{{{CR}}}{local}"


ADDRESS_DATA = cr("address-data")
