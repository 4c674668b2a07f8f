"""The one dead-property codec: a resource's dead properties as the bytes of a property
file (``<props>`` + each property element as the client sent it + ``</props>``), the form
both backends store without looking inside."""

from __future__ import annotations

from lxml import etree

from davserver.backends.base import DeadProps

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class XmlPropsCodec:
    """Dead properties to and from a property file (see the module docstring)."""

    def encode(self, props: DeadProps) -> bytes:
        """The property file holding ``props``."""
        return b"<props>" + b"".join(props.values()) + b"</props>"

    def decode(self, data: bytes) -> dict[str, bytes]:
        """The properties of a property file ({} when it is damaged)."""
        try:
            root = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError:
            return {}
        # A comment or processing instruction (a hand-edited file) is no property.
        return {child.tag: etree.tostring(child) for child in root if isinstance(child.tag, str)}


PROPS_CODEC = XmlPropsCodec()
