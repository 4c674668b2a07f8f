"""davserver.vcard.summary: what an address book index keeps of a card."""

from __future__ import annotations

import pytest
from vcard_samples import (
    ALL,
    APPLE_CONTACT,
    APPLE_GROUP,
    APPLE_UID,
    DAVX5_CONTACT,
    DAVX5_GROUP,
    DAVX5_UID,
    card,
)

from davserver.vcard import Filter, PropFilter, Summary, parse, summarize


def test_apple_contact() -> None:
    summary = summarize(parse(APPLE_CONTACT))
    assert summary.uid == APPLE_UID
    assert summary.version == "3.0"
    assert summary.kind == "individual"
    assert summary.fn == "Johnny Appleseed"
    assert summary.n == ("Appleseed", "Johnny", "", "", "")
    assert summary.emails == ("johnny@example.com",)
    assert summary.tels == ("+1 (555) 123-4567",)
    assert summary.categories == ("Friends", "Work")
    assert summary.members == ()
    assert "PHOTO" not in {p.name for p in summary.properties}
    (email,) = [p for p in summary.properties if p.name == "EMAIL"]
    assert email.group == "ITEM1"
    assert email.param("TYPE") == ("INTERNET", "pref")


def test_apple_group() -> None:
    summary = summarize(parse(APPLE_GROUP))
    assert summary.kind == "group"
    assert summary.members == (
        f"urn:uuid:{APPLE_UID}",
        "urn:uuid:0E7E0C3A-5B1D-4D0B-8C5E-2B7A4F6C9D01",
    )
    assert summary.n == ("Friends",)


def test_davx5_cards() -> None:
    contact = summarize(parse(DAVX5_CONTACT))
    assert contact.version == "4.0"
    assert contact.fn == "Zoë Çelik"
    assert contact.emails == ("zoe@example.org", "zoe.celik@example.com")
    assert contact.texts("NICKNAME") == ("Zo", "Zozo")
    assert contact.categories == ("Family", "Climbing")
    group = summarize(parse(DAVX5_GROUP))
    assert (group.kind, group.members) == ("group", (DAVX5_UID,))


def test_parameters_are_merged_per_name() -> None:
    ways = ["TYPE=WORK,VOICE", 'TYPE="WORK,VOICE"', "TYPE=WORK;TYPE=VOICE", "type=WORK;VOICE"]
    summaries = {summarize(parse(card("3.0", f"TEL;{way};X-A=1:123"))) for way in ways}
    assert len(summaries) == 1
    (tel,) = summaries.pop().properties[2:]
    assert [(p.name, p.values) for p in tel.params] == [
        ("TYPE", ("WORK", "VOICE")),
        ("X-A", ("1",)),
    ]


def test_kind_and_no_n() -> None:
    summary = summarize(parse(card("4.0", "KIND:Org")))
    assert (summary.kind, summary.n) == ("org", ())


@pytest.mark.parametrize("name", sorted(ALL))
def test_json_round_trip(name: str) -> None:
    summary = summarize(parse(ALL[name]))
    assert Summary.from_json(summary.to_json()) == summary


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"format": 2}',
        '{"format": 1}',
        '{"format":1,"uid":1,"version":"3.0","kind":"individual","fn":"x","n":[],"properties":[]}',
        '{"format":1,"uid":"u","version":"3.0","kind":"individual","fn":"x","n":"ab",'
        '"properties":[]}',
        '{"format":1,"uid":"u","version":"3.0","kind":"individual","fn":"x","n":[],'
        '"properties":[[null,"FN"]]}',
    ],
)
def test_from_json_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        Summary.from_json(text)


def test_answers_only_filters_on_indexed_properties() -> None:
    summary = summarize(parse(APPLE_CONTACT))
    assert summary.answers(Filter())
    assert summary.answers(Filter((PropFilter("item1.EMAIL"), PropFilter("fn"))))
    assert not summary.answers(Filter((PropFilter("EMAIL"), PropFilter("NOTE"))))
