"""Text from users (file names, commit authors and messages) as an HTML page shows it:
every character that displays as nothing, or that changes how the text around it is
displayed, is shown as a visible escape instead.

A name holding U+202E RIGHT-TO-LEFT OVERRIDE displays the rest of it reversed, so
``\\u202etxt.exe`` looks like ``exe.txt``; a zero-width space, a no-break space or a
Hangul filler make two different names look alike. Escaped here: every character Python
does not call printable (the categories Cc, Cf, Cs, Co, Cn, Zl, Zp, and the spaces Zs
other than U+0020: controls, format and bidi characters, the undecodable bytes of a
name, private and unassigned code points, separators) and the letters and symbols that
draw nothing (``_BLANK``). Combining marks are left alone: names in many scripts need
them, and they stay attached to a visible character. The escape reads ``\\u202e`` (or
``\\xNN``, ``\\UXXXXXXXX``); ``visible`` marks it up (class ``esc``, the character's name
as tooltip), ``plain`` gives it as text for places without markup (``<title>``).
"""

from __future__ import annotations

import html
import unicodedata

_BLANK = frozenset("\u034f\u115f\u1160\u2800\u3164\uffa0")
"""Default-ignorable or blank characters outside the categories above: the combining
grapheme joiner, the Hangul fillers and the blank Braille pattern."""

STYLE = "span.esc{font-family:monospace;color:#a00;background:#fee;border-radius:2px}"
"""The CSS rule for the escapes, for the pages' own style sheets."""


def _hidden(ch: str) -> bool:
    return not ch.isprintable() or ch in _BLANK


def _escape(ch: str) -> tuple[str, str]:
    """The escape of a hidden character, and what it is (for a tooltip)."""
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}", f"byte 0x{code - 0xDC00:02X}, not UTF-8"
    if code < 0x100:
        escape = f"\\x{code:02x}"
    elif code < 0x10000:
        escape = f"\\u{code:04x}"
    else:
        escape = f"\\U{code:08x}"
    name = unicodedata.name(ch, "")
    return escape, f"U+{code:04X} {name}".rstrip()


def _clean(text: str) -> bool:
    return text.isprintable() and _BLANK.isdisjoint(text)


def visible(text: str) -> str:
    """``text`` escaped for HTML, each hidden character as ``<span class="esc">`` around
    its escape."""
    if _clean(text):
        return html.escape(text)
    out = []
    for ch in text:
        if _hidden(ch):
            escape, what = _escape(ch)
            out.append(f'<span class="esc" title="{html.escape(what)}">{escape}</span>')
        else:
            out.append(html.escape(ch))
    return "".join(out)


def plain(text: str) -> str:
    """``text`` escaped for HTML, each hidden character as its escape, without markup."""
    if _clean(text):
        return html.escape(text)
    return html.escape("".join(_escape(ch)[0] if _hidden(ch) else ch for ch in text))
