"""davserver.vcard.lines and .values: content lines taken apart and written back, value
escapes, lists."""

from __future__ import annotations

import pytest

from davserver.vcard.lines import (
    Unrepresentable,
    decode_caret,
    fold,
    logical_lines,
    render,
    split_line,
)
from davserver.vcard.values import escape, match_texts, split_raw, unescape


def test_logical_lines_keep_their_source() -> None:
    text = "A:1\r\nB:2\r\n 3\n\tx\r\n\r\nC:4"
    lines = logical_lines(text)
    assert [(n.number, n.text, n.source) for n in lines] == [
        (1, "A:1", "A:1\r\n"),
        (2, "B:23x", "B:2\r\n 3\n\tx\r\n"),
        (6, "C:4", "C:4"),
    ]


def test_split_line() -> None:
    line = split_line('item1.X-ABLabel;TYPE=a,"b,c";X-Q=":";BARE:v:w;x')
    assert line.group == "item1"
    assert line.name == "X-ABLabel"
    assert line.params == (("TYPE", ("a", "b,c")), ("X-Q", (":",)), ("TYPE", ("BARE",)))
    assert line.value == "v:w;x"
    assert line.head == 'item1.X-ABLabel;TYPE=a,"b,c";X-Q=":";BARE'


def test_decode_caret() -> None:
    assert decode_caret("a^nb^Nc^^d^'e^x") == 'a\nb\nc^d"e^x'
    assert decode_caret("plain") == "plain"


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_fold_keeps_75_octets_and_whole_characters(width: int) -> None:
    char = {1: "a", 2: "é", 3: "漢", 4: "😀"}[width]
    line = "NOTE:" + char * 200
    folded = fold(line)
    physical = folded.split("\r\n")
    assert physical[-1] == ""
    assert all(len(p.encode()) <= 75 for p in physical)
    assert all(p.startswith(" ") for p in physical[1:-1])
    assert "".join(p[1:] if i else p for i, p in enumerate(physical[:-1])) == line


def test_fold_short_line() -> None:
    assert fold("FN:x") == "FN:x\r\n"


def test_render_quotes_and_encodes_per_version() -> None:
    params = [("TYPE", ["work", "home"]), ("X-A", ["a;b", "c:d", "e,f", "plain"])]
    assert render("item1.EMAIL", params, "x@y", "3.0") == (
        'item1.EMAIL;TYPE=work,home;X-A="a;b","c:d","e,f",plain:x@y\r\n'
    )
    assert render("ADR", [("LABEL", ['1 "A" St\n^x'])], ";;", "4.0") == (
        "ADR;LABEL=1 ^'A^' St^n^^x:;;\r\n"
    )
    for bad in ("a\nb", 'say "hi"'):
        with pytest.raises(Unrepresentable):
            render("ADR", [("LABEL", [bad])], ";;", "3.0")


def test_escapes() -> None:
    assert unescape("a\\,b\\;c\\\\d\\ne\\Nf\\:g\\") == "a,b;c\\d\ne\nf:g\\"
    assert escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    assert unescape(escape("x,;\\\n\\n")) == "x,;\\\n\\n"


def test_split_raw() -> None:
    assert split_raw("a\\,b,c\\\\,d", ",") == ["a\\,b", "c\\\\", "d"]
    assert split_raw("Doe;John\\;Jr;;;", ";") == ["Doe", "John\\;Jr", "", "", ""]
    assert split_raw("single", ",") == ["single"]


def test_match_texts() -> None:
    assert match_texts("CATEGORIES", "Friends,Rock\\, Pop") == ("Friends", "Rock, Pop")
    assert match_texts("NICKNAME", "") == ("",)
    assert match_texts("N", "Doe;John;;;") == ("Doe;John;;;",)
    assert match_texts("NOTE", "a\\, b") == ("a, b",)
