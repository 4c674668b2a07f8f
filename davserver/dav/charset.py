"""The charset of a text file's answer (``[server] default_charset``).

Stored files carry no encoding, and without a ``charset`` parameter a browser reads a text
file in a legacy encoding of its locale, garbling UTF-8. Like Apache's
``AddDefaultCharset`` and nginx's ``charset_types``, the server adds one to the text types
that lack it: every ``text/*`` type and JavaScript (``application/javascript``). Left
alone: XML types (``text/xml``, ``*+xml``, ``application/xml``), whose own encoding
declaration a charset parameter would override (RFC 7303 §3), JSON, for which RFC 8259
defines no charset (it is always UTF-8), and every type that names a charset already.
"""

from __future__ import annotations

import functools

TEXTUAL = frozenset({"application/javascript"})
"""Types outside ``text/*`` that get a charset."""


@functools.lru_cache(maxsize=256)
def with_charset(content_type: str, charset: str) -> str:
    """``content_type`` with ``; charset=<charset>`` added when it is a text type without
    one (see the module's docstring); unchanged otherwise, or when ``charset`` is empty."""
    if not charset:
        return content_type
    base, _, params = content_type.partition(";")
    base = base.strip().lower()
    if "charset=" in params.lower():
        return content_type
    if base.startswith("text/"):
        if base == "text/xml" or base.endswith("+xml"):
            return content_type
    elif base not in TEXTUAL:
        return content_type
    return f"{content_type}; charset={charset}"
