"""What the vCard layer refuses. Each error names the RFC 6352 precondition element (local
name in the CardDAV namespace) that the HTTP layer answers with, or none for a plain 400."""

from __future__ import annotations

from typing import ClassVar


class VCardError(ValueError):
    """A refusal of the vCard layer; ``str(error)`` is the reason, for the log."""

    condition: ClassVar[str | None] = None
    """The CARDDAV precondition that failed (e.g. ``"valid-address-data"``), or None."""


class InvalidVCard(VCardError):
    """Not one well-formed vCard with a UID (RFC 6352 §5.1, §6.3.2.1)."""

    condition = "valid-address-data"


class UnsupportedVersion(VCardError):
    """A vCard version other than 3.0 and 4.0, stored or asked for."""

    condition = "supported-address-data"


class TooLarge(VCardError):
    """More octets than the address book's max-resource-size."""

    condition = "max-resource-size"


class ConversionError(VCardError):
    """The vCard cannot be given faithfully in the version asked for (RFC 6352 §5.1.1)."""

    condition = "supported-address-data-conversion"

    def __init__(self, version: str, properties: tuple[str, ...]) -> None:
        super().__init__(f"cannot convert {', '.join(properties)} to vCard {version}")
        self.version = version
        self.properties = properties
        """The names of the properties that cannot be carried over."""


class UnsupportedCollation(VCardError):
    """A text-match names a collation the server does not have (RFC 6352 §8.3)."""

    condition = "supported-collation"


class InvalidFilter(VCardError):
    """A filter that breaks RFC 6352's grammar (a bad attribute value, is-not-defined
    beside other tests): the HTTP layer answers 400."""
