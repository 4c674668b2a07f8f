"""Property tests of davserver.vcard with generated vCards (3.0 and 4.0; folded lines with
spaces and tabs, CRLF or LF; quoted and repeated parameters, RFC 6868 in 4.0; groups such
as item1.EMAIL; non-ASCII and escaped text; photos inline and as URIs; Apple and 4.0
groups; dates, GEO, TZ). Each card is generated as a model first and written out from
it, so what the parser reads can be compared with what was meant:

- parsing gives back every property of the model, and the stored bytes stay as they are
  (conversion to the card's own version and partial retrieval of everything give them);
- the summary does not depend on how the card was folded, and survives JSON;
- 3.0 → 4.0 → 3.0 (and 4.0 → 3.0 → 4.0) keeps every property's meaning;
- a filter gives on the summary what it gives on the card, and both equal a plain
  evaluation of the model written here (the oracle).
"""

from __future__ import annotations

import base64
import contextlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from davserver.vcard import (
    INDEXED,
    ConversionError,
    Filter,
    ParamFilter,
    PropFilter,
    PropRequest,
    Summary,
    TextMatch,
    VCard,
    convert,
    matches,
    parse,
    partial,
    summarize,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Prop:
    """A property as meant: written name, parameters (values decoded, TYPE values one by
    one), the raw value and what a text-match compares with."""

    group: str | None
    name: str
    params: tuple[tuple[str, tuple[str, ...]], ...]
    raw: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    version: str
    props: tuple[Prop, ...]  # VERSION among them

    def param(self, prop: Prop, name: str) -> tuple[str, ...] | None:
        found = [v for n, values in prop.params if n.upper() == name.upper() for v in values]
        return tuple(found) if any(n.upper() == name.upper() for n, _ in prop.params) else None


# --- generating models -----------------------------------------------------------------

SPECIALS = [",", ";", "\\", "\n", ":", " ", "é", "É", "e\u0301", "ß", "SS", "ǆ", "Ǆ", "😀", "漢"]
CHARS = st.one_of(st.characters(blacklist_categories=("Cc", "Cs")), st.sampled_from(SPECIALS))
TEXTS = st.lists(CHARS, max_size=10).map("".join)
WORDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=1,
    max_size=8,
)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def spelled(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.title()])


def groups() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(["item1", "ITEM2", "Item3", "x-abc"]))


@st.composite
def x_params(draw: st.DrawFn, version: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    banned = '"' if version == "3.0" else ""
    chars = st.one_of(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=banned),
        st.sampled_from(
            [",", ";", ":", "^", "é"] + (["\n", '"', "^n"] if version == "4.0" else [])
        ),
    )
    names = draw(st.lists(st.sampled_from(["X-A", "X-LABEL", "x-b"]), max_size=2, unique=True))
    return tuple(
        (
            name,
            tuple(draw(st.lists(st.lists(chars, max_size=6).map("".join), min_size=1, max_size=2))),
        )
        for name in names
    )


@st.composite
def types(draw: st.DrawFn, choices: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    picked = draw(st.lists(st.sampled_from(choices), max_size=3, unique_by=str.lower))
    return (("TYPE", tuple(picked)),) if picked else ()


@st.composite
def text_props(draw: st.DrawFn, version: str) -> Prop:
    name = draw(st.sampled_from(["NOTE", "TITLE", "X-NOTE", "ROLE", "X-ABLabel", "EMAIL", "TEL"]))
    text = draw(TEXTS)
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if name in ("EMAIL", "TEL"):
        # A preferred one: TYPE=pref in 3.0, PREF=1 (or another rank) in 4.0.
        choices = ["WORK", "home", "CELL", "voice", "INTERNET"]
        params = draw(types([*choices, "pref"] if version == "3.0" else choices))
        if version == "4.0":
            params += draw(st.sampled_from([(), (("PREF", ("1",)),), (("PREF", ("7",)),)]))
    params += draw(x_params(version))
    return Prop(draw(groups()), draw(spelled(name)), params, escape(text), (text,))


@st.composite
def structured_props(draw: st.DrawFn, version: str) -> Prop:
    name, size = draw(st.sampled_from([("N", 5), ("ORG", 2), ("ADR", 7)]))
    parts = draw(st.lists(TEXTS, min_size=1, max_size=size))
    return Prop(
        draw(groups()),
        name,
        draw(x_params(version)),
        ";".join(escape(p) for p in parts),
        (";".join(parts),),
    )


@st.composite
def list_props(draw: st.DrawFn, version: str) -> Prop:
    name = draw(st.sampled_from(["CATEGORIES", "NICKNAME"]))
    items = draw(st.lists(TEXTS, min_size=1, max_size=3))
    return Prop(draw(groups()), name, (), ",".join(escape(i) for i in items), tuple(items))


def raw(
    name: str, value: str, *params: tuple[str, tuple[str, ...]], group: str | None = None
) -> Prop:
    return Prop(group, name, tuple(params), value, (value,))


SPECIAL_3 = [
    "PHOTO-b",
    "LOGO-b",
    "PHOTO-uri",
    "PHOTO-uri-type",
    "BDAY",
    "BDAY-no-year",
    "BDAY-time",
    "X-ANNIVERSARY",
    "X-ADDRESSBOOKSERVER-KIND",
    "X-ADDRESSBOOKSERVER-MEMBER",
    "X-GENDER",
    "GEO",
    "TZ",
    "TZ-text",
]
SPECIAL_4 = [
    "PHOTO-b",
    "LOGO-b",
    "PHOTO-uri",
    "PHOTO-uri-type",
    "BDAY",
    "BDAY-no-year",
    "BDAY-time",
    "ANNIVERSARY",
    "KIND",
    "MEMBER",
    "GENDER",
    "GEO",
    "TZ",
    "TZ-text",
]


@st.composite
def special_props(draw: st.DrawFn, version: str) -> Prop:
    """The properties that differ between the versions, each written the version's way."""
    which = draw(st.sampled_from(SPECIAL_3 if version == "3.0" else SPECIAL_4))
    three = version == "3.0"
    name = which.split("-")[0] if which[:2] != "X-" else which
    if which in ("PHOTO-b", "LOGO-b"):
        payload = base64.b64encode(draw(st.binary(min_size=1, max_size=90))).decode()
        fmt = draw(st.sampled_from(["JPEG", "png", "GIF"]))
        if which == "LOGO-b":
            return (
                raw(name, payload, ("encoding", ("B",)))
                if three
                else raw(name, f"data:application/octet-stream;base64,{payload}")
            )
        return (
            raw(name, payload, ("ENCODING", ("b",)), ("TYPE", (fmt,)))
            if three
            else raw(name, f"data:image/{fmt.lower()};base64,{payload}")
        )
    if which.startswith("PHOTO-uri"):
        uri = f"https://example.com/p/{draw(WORDS)}.png"
        if which == "PHOTO-uri":
            return raw(name, uri, ("VALUE", ("uri",))) if three else raw(name, uri)
        fmt = draw(st.sampled_from(["JPEG", "png", "GIF"]))
        return (
            raw(name, uri, ("VALUE", ("URI",)), ("TYPE", (fmt,)))
            if three
            else raw(name, uri, ("MEDIATYPE", (f"image/{fmt.lower()}",)))
        )
    if "BDAY" in which or "ANNIVERSARY" in which:
        y, m, d = draw(st.integers(1900, 2030)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
        if which == "BDAY-no-year":
            return (
                raw(name, f"1604-{m:02}-{d:02}", ("X-APPLE-OMIT-YEAR", ("1604",)))
                if three
                else (raw(name, f"--{m:02}{d:02}"))
            )
        if which == "BDAY-time":
            return (
                raw(name, f"{y:04}-{m:02}-{d:02}T10:20:30Z", ("VALUE", ("date-time",)))
                if three
                else (raw(name, f"{y:04}{m:02}{d:02}T102030Z"))
            )
        return raw(which, f"{y:04}-{m:02}-{d:02}" if three else f"{y:04}{m:02}{d:02}")
    if which in ("X-ADDRESSBOOKSERVER-KIND", "KIND"):
        return raw(
            which, "group" if three else draw(st.sampled_from(["group", "individual", "org"]))
        )
    if which in ("X-ADDRESSBOOKSERVER-MEMBER", "MEMBER"):
        return raw(which, f"urn:uuid:{draw(WORDS)}")
    if which in ("X-GENDER", "GENDER"):
        return raw(
            which,
            draw(st.sampled_from(["M", "F", "O", "Male"] if three else ["M", "F", "O;other"])),
        )
    if which == "GEO":
        lat = draw(st.sampled_from(["37.386013", "-12.5", "0", "48"]))
        lon = draw(st.sampled_from(["-122.082932", "2.25", "7"]))
        return raw(name, f"{lat};{lon}" if three else f"geo:{lat},{lon}")
    if which == "TZ":
        return raw(name, "-05:00") if three else raw(name, "-0500", ("VALUE", ("utc-offset",)))
    return raw(name, "Europe/Berlin", ("VALUE", ("text",))) if three else raw(name, "Europe/Berlin")


@st.composite
def models(draw: st.DrawFn, version: str | None = None) -> Model:
    version = version or draw(st.sampled_from(["3.0", "4.0"]))
    kinds = st.one_of(
        text_props(version), structured_props(version), list_props(version), special_props(version)
    )
    props = draw(st.lists(kinds, max_size=8))
    uid = draw(WORDS) + draw(TEXTS)
    fn = draw(TEXTS)
    for prop in (
        Prop(None, "UID", (), escape(uid), (uid,)),
        Prop(None, "FN", (), escape(fn), (fn,)),
    ):
        props.insert(draw(st.integers(0, len(props))), prop)
    at = 0 if version == "4.0" else draw(st.integers(0, len(props)))
    props.insert(at, Prop(None, "VERSION", (), version, (version,)))
    return Model(version, tuple(props))


# --- writing a model out ---------------------------------------------------------------


@st.composite
def param_text(draw: st.DrawFn, version: str, name: str, values: tuple[str, ...]) -> str:
    def one(value: str) -> str:
        if version == "4.0":
            value = value.replace("^", "^^").replace("\n", "^n").replace('"', "^'")
        return f'"{value}"' if re.search(r"[;:,]", value) or draw(st.booleans()) else value

    if name.upper() == "TYPE":
        style = draw(
            st.sampled_from(["list", "repeat", "quoted"] + (["bare"] if version == "3.0" else []))
        )
        if style == "repeat":
            return "".join(f";{name}={one(v)}" for v in values)
        if style == "quoted":
            return f';{name}="{",".join(values)}"'
        if style == "bare" and all(re.fullmatch(r"[A-Za-z0-9-]+", v) for v in values):
            return "".join(f";{v}" for v in values)
        return f";{name}=" + ",".join(one(v) for v in values)
    return f";{name}=" + ",".join(one(v) for v in values)


@st.composite
def folded(draw: st.DrawFn, line: str, eol: str) -> str:
    cuts = (
        sorted(draw(st.sets(st.integers(1, max(1, len(line) - 1)), max_size=4)))
        if len(line) > 1
        else []
    )
    pieces = [line[i:j] for i, j in zip([0, *cuts], [*cuts, len(line)], strict=True)]
    return (
        pieces[0] + "".join(eol + draw(st.sampled_from([" ", "\t"])) + p for p in pieces[1:]) + eol
    )


@st.composite
def renderings(draw: st.DrawFn, model: Model) -> bytes:
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    out = ["BEGIN:VCARD" + eol]
    for prop in model.props:
        head = (f"{prop.group}." if prop.group else "") + prop.name
        head += "".join(draw(param_text(model.version, n, v)) for n, v in prop.params)
        out.append(draw(folded(f"{head}:{prop.raw}", eol)))
    out.append("END:VCARD" + eol)
    return "".join(out).encode()


def cards(version: str | None = None) -> st.SearchStrategy[tuple[Model, bytes]]:
    return models(version).flatmap(lambda m: renderings(m).map(lambda data: (m, data)))


# --- what a card means, for the conversions --------------------------------------------

CASELESS = {"TYPE", "VALUE", "ENCODING"}


def meaning(vcard: VCard) -> Counter[tuple[object, ...]]:
    """The properties as a multiset, with what conversions may change left out: order,
    parameter order, the case of TYPE, VALUE and ENCODING values, folding, quoting."""
    out: Counter[tuple[object, ...]] = Counter()
    for prop in vcard.properties:
        if prop.name == "VERSION":
            continue
        params = []
        for name in sorted({p.name for p in prop.params}):
            values = prop.param(name) or ()
            params.append(
                (name, tuple(sorted(v.lower() for v in values)) if name in CASELESS else values)
            )
        out[(prop.group, prop.name, tuple(params), prop.value)] += 1
    return out


# --- the oracle ------------------------------------------------------------------------


def key(collation: str, text: str) -> str:
    if collation in ("i;unicode-casemap", "default"):
        return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    if collation == "i;ascii-casemap":
        return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    return text


def text_holds(tm: TextMatch, values: tuple[str, ...]) -> bool:
    needle = key(tm.collation, tm.text)
    hit = False
    for value in values:
        hay = key(tm.collation, value)
        if tm.match_type == "equals":
            hit = hit or hay == needle
        elif tm.match_type == "contains":
            hit = hit or needle in hay
        elif tm.match_type == "starts-with":
            hit = hit or hay[: len(needle)] == needle
        else:
            hit = hit or (hay[len(hay) - len(needle) :] == needle if needle else True)
    return hit != tm.negate


def oracle(model: Model, flt: Filter) -> bool:
    """RFC 6352 §10.5 on the model, as plainly as it reads."""
    if not flt.prop_filters:
        return True
    results = []
    for pf in flt.prop_filters:
        wanted = pf.name.upper()
        group, name = wanted.rsplit(".", 1) if "." in wanted else (None, wanted)
        named = [
            p
            for p in model.props
            if p.name.upper() == name and (group is None or (p.group or "").upper() == group)
        ]
        if pf.is_not_defined:
            results.append(len(named) == 0)
            continue
        if not pf.text_matches and not pf.param_filters:
            results.append(len(named) > 0)
            continue
        found = False
        for prop in named:
            tests = [text_holds(tm, prop.texts) for tm in pf.text_matches]
            for param in pf.param_filters:
                values = model.param(prop, param.name)
                if param.is_not_defined:
                    tests.append(values is None)
                elif values is None:
                    tests.append(False)
                else:
                    tests.append(param.text_match is None or text_holds(param.text_match, values))
            if (pf.test == "anyof" and any(tests)) or (pf.test == "allof" and all(tests)):
                found = True
        results.append(found)
    return any(results) if flt.test == "anyof" else all(results)


@st.composite
def text_matches(draw: st.DrawFn, values: tuple[str, ...]) -> TextMatch:
    if values and draw(st.booleans()):
        value = draw(st.sampled_from(values))
        i, j = sorted(draw(st.lists(st.integers(0, len(value)), min_size=2, max_size=2)))
        change = draw(st.sampled_from([str, str.upper, str.lower, str.casefold, str.swapcase]))
        text = change(value[i:j])
    else:
        text = draw(TEXTS)
    return TextMatch(
        text,
        collation=draw(
            st.sampled_from(["i;unicode-casemap", "i;ascii-casemap", "i;octet", "default"])
        ),
        match_type=draw(st.sampled_from(["equals", "contains", "starts-with", "ends-with"])),
        negate=draw(st.booleans()),
    )


@st.composite
def filters(draw: st.DrawFn, model: Model, indexed_only: bool) -> Filter:
    present = [p for p in model.props if not indexed_only or p.name.upper() in INDEXED]
    absent = ["EMAIL", "NICKNAME", "item9.TEL"] if indexed_only else ["NOTE", "X-NONE", "item9.TEL"]
    prop_filters = []
    for _ in range(draw(st.integers(1, 3))):
        prop = draw(st.sampled_from(present)) if present and draw(st.integers(0, 3)) else None
        if prop is None:
            name, texts, params = draw(st.sampled_from(absent)), (), ()
        else:
            name = draw(
                st.sampled_from(
                    [prop.name, prop.name.lower()]
                    + ([f"{prop.group}.{prop.name}", f"other.{prop.name}"] if prop.group else [])
                )
            )
            texts, params = prop.texts, prop.params
        if draw(st.integers(0, 5)) == 0:
            prop_filters.append(PropFilter(name, is_not_defined=True))
            continue
        tms = tuple(draw(st.lists(text_matches(texts), max_size=2)))
        pfs = []
        for _ in range(draw(st.integers(0, 2))):
            pname, pvalues = draw(st.sampled_from([*params, ("X-NONE", ())]))
            choice = draw(st.integers(0, 2))
            pfs.append(
                ParamFilter(pname, is_not_defined=True)
                if choice == 0
                else ParamFilter(pname)
                if choice == 1
                else ParamFilter(pname, text_match=draw(text_matches(pvalues)))
            )
        prop_filters.append(
            PropFilter(name, draw(st.sampled_from(["anyof", "allof"])), False, tms, tuple(pfs))
        )
    return Filter(tuple(prop_filters), draw(st.sampled_from(["anyof", "allof"])))


# --- the properties --------------------------------------------------------------------


@SETTINGS
@given(cards())
def test_parse_reads_what_was_written(generated: tuple[Model, bytes]) -> None:
    model, data = generated
    parsed = parse(data)
    assert parsed.data is data
    assert parsed.version == model.version
    assert len(parsed.properties) == len(model.props)
    for got, meant in zip(parsed.properties, model.props, strict=True):
        assert got.group == (meant.group.upper() if meant.group else None)
        assert got.name == meant.name.upper()
        assert got.value == meant.raw
        assert got.texts == meant.texts
        for name in {n.upper() for n, _ in meant.params}:
            assert got.param(name) == model.param(meant, name)
    assert parsed.begin + "".join(p.source for p in parsed.properties) + parsed.end == data.decode()


@SETTINGS
@given(st.data())
def test_summary_does_not_depend_on_the_writing(data: st.DataObject) -> None:
    model = data.draw(models())
    one, two = data.draw(renderings(model)), data.draw(renderings(model))
    summary = summarize(parse(one))
    assert summarize(parse(two)) == summary
    assert Summary.from_json(summary.to_json()) == summary
    assert summary.version == model.version


@SETTINGS
@given(cards())
def test_the_stored_bytes_are_never_changed(generated: tuple[Model, bytes]) -> None:
    model, data = generated
    kept = bytes(data)
    parsed = parse(data)
    assert convert(parsed, model.version) is parsed
    assert partial(parsed, []) is data
    every = [PropRequest(f"{p.group}.{p.name}" if p.group else p.name) for p in model.props]
    assert partial(parsed, every) == data
    with contextlib.suppress(ConversionError):
        convert(parsed, "4.0" if model.version == "3.0" else "3.0")
    assert data == kept and parsed.data == kept


@SETTINGS
@given(cards("3.0"))
def test_three_to_four_and_back_keeps_the_meaning(generated: tuple[Model, bytes]) -> None:
    parsed = parse(generated[1])
    four = convert(parsed, "4.0")
    assert four.version == "4.0"
    back = convert(four, "3.0")
    assert meaning(back) == meaning(parsed)
    before, after = summarize(parsed), summarize(four)
    assert (after.uid, after.fn, after.kind, after.members) == (
        before.uid,
        before.fn,
        before.kind,
        before.members,
    )
    assert (after.emails, after.categories) == (before.emails, before.categories)


@SETTINGS
@given(cards("4.0"))
def test_four_to_three_and_back_keeps_the_meaning(generated: tuple[Model, bytes]) -> None:
    model, data = generated
    parsed = parse(data)
    # vCard 3.0 has no way to put a newline or a quote in a parameter value.
    cannot = {
        p.name.upper()
        for p in model.props
        for _, vs in p.params
        for v in vs
        if "\n" in v or '"' in v
    }
    try:
        three = convert(parsed, "3.0")
    except ConversionError as refused:
        assert set(refused.properties) == cannot
        return
    assert not cannot
    assert meaning(convert(three, "4.0")) == meaning(parsed)
    before, after = summarize(parsed), summarize(three)
    assert (after.uid, after.fn, after.kind, after.members) == (
        before.uid,
        before.fn,
        before.kind,
        before.members,
    )


@SETTINGS
@given(st.data())
def test_filters_on_the_summary_equal_the_oracle(data: st.DataObject) -> None:
    model, raw_card = data.draw(cards())
    flt = data.draw(filters(model, indexed_only=True))
    summary = summarize(parse(raw_card))
    assert summary.answers(flt)
    expected = oracle(model, flt)
    note(f"{flt} -> {expected}")
    assert matches(summary, flt) == expected
    assert matches(parse(raw_card), flt) == expected


@SETTINGS
@given(st.data())
def test_filters_on_the_card_equal_the_oracle(data: st.DataObject) -> None:
    model, raw_card = data.draw(cards())
    flt = data.draw(filters(model, indexed_only=False))
    expected = oracle(model, flt)
    note(f"{flt} -> {expected}")
    assert matches(parse(raw_card), flt) == expected
    summary = summarize(parse(raw_card))
    if summary.answers(flt):
        assert matches(summary, flt) == expected
