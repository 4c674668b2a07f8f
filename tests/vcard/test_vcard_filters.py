"""davserver.vcard.filters and .collation: addressbook-query filters (RFC 6352 §10.5)
evaluated on a card and on its summary, which must agree."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from vcard_samples import APPLE_CONTACT, APPLE_GROUP, DAVX5_CONTACT, card

from davserver.vcard import (
    COLLATIONS,
    Filter,
    InvalidFilter,
    ParamFilter,
    PropFilter,
    TextMatch,
    UnsupportedCollation,
    VCard,
    matches,
    parse,
    summarize,
)

CYRUS = parse(
    card(
        "3.0",
        "NICKNAME:me",
        "EMAIL;TYPE=INTERNET:daboo@example.com",
        "EMAIL;TYPE=WORK:cyrus@example.org",
        "item1.TEL;TYPE=WORK:412 605 0499",
        "CATEGORIES:Friends,Rock\\, Pop",
        fn="Cyrus Daboo",
    )
)
OLIVER = parse(card("3.0", "NICKNAME:oliver", "EMAIL:oliver@example.com", fn="Oliver Daboo"))
ZOE = parse(DAVX5_CONTACT)


def check(vcard: VCard, flt: Filter) -> bool:
    """``matches`` on the card, compared with ``matches`` on its summary where it answers."""
    result = matches(vcard, flt)
    summary = summarize(vcard)
    if summary.answers(flt):
        assert matches(summary, flt) == result
    return result


def test_rfc_example_nickname_equals() -> None:
    flt = Filter((PropFilter("NICKNAME", text_matches=(TextMatch("me", match_type="equals"),)),))
    assert check(CYRUS, flt)
    assert not check(OLIVER, flt)


def test_rfc_example_fn_or_email() -> None:
    flt = Filter(
        (
            PropFilter("FN", text_matches=(TextMatch("daboo"),)),
            PropFilter("EMAIL", text_matches=(TextMatch("daboo"),)),
        ),
        test="anyof",
    )
    assert check(CYRUS, flt) and check(OLIVER, flt)
    both = Filter(flt.prop_filters, test="allof")
    assert check(CYRUS, both)
    assert not check(OLIVER, both)


def test_empty_filter_and_existence() -> None:
    assert check(OLIVER, Filter())
    assert check(CYRUS, Filter((PropFilter("TEL"),)))
    assert not check(OLIVER, Filter((PropFilter("TEL"),)))
    assert not check(CYRUS, Filter((PropFilter("TEL", is_not_defined=True),)))
    assert check(OLIVER, Filter((PropFilter("TEL", is_not_defined=True),)))


def test_group_prefix() -> None:
    assert check(CYRUS, Filter((PropFilter("item1.TEL"),)))
    assert check(CYRUS, Filter((PropFilter("ITEM1.tel"),)))
    assert not check(CYRUS, Filter((PropFilter("item2.TEL"),)))
    assert not check(CYRUS, Filter((PropFilter("item1.EMAIL"),)))
    assert check(CYRUS, Filter((PropFilter("item1.EMAIL", is_not_defined=True),)))


def test_prop_filter_tests_one_property_at_a_time() -> None:
    work_daboo = (
        TextMatch("daboo"),
        ParamFilter("TYPE", text_match=TextMatch("work", match_type="equals")),
    )
    assert check(
        CYRUS,
        Filter(
            (
                PropFilter(
                    "EMAIL", test="anyof", text_matches=work_daboo[:1], param_filters=work_daboo[1:]
                ),
            )
        ),
    )
    # No single EMAIL is both "daboo" and of TYPE work.
    assert not check(
        CYRUS,
        Filter(
            (
                PropFilter(
                    "EMAIL", test="allof", text_matches=work_daboo[:1], param_filters=work_daboo[1:]
                ),
            )
        ),
    )
    cyrus_work = (TextMatch("cyrus"), ParamFilter("TYPE", text_match=TextMatch("WORK")))
    assert check(
        CYRUS,
        Filter(
            (
                PropFilter(
                    "EMAIL", test="allof", text_matches=cyrus_work[:1], param_filters=cyrus_work[1:]
                ),
            )
        ),
    )


def test_param_filters() -> None:
    def email(*param_filters: ParamFilter) -> Filter:
        return Filter((PropFilter("EMAIL", test="allof", param_filters=param_filters),))

    assert check(CYRUS, email(ParamFilter("TYPE")))
    assert not check(OLIVER, email(ParamFilter("TYPE")))
    assert check(OLIVER, email(ParamFilter("TYPE", is_not_defined=True)))
    assert not check(CYRUS, email(ParamFilter("X-NONE")))
    # TYPE=home;PREF=1 and TYPE=work: each value on its own.
    assert check(ZOE, email(ParamFilter("type", text_match=TextMatch("HOME", match_type="equals"))))
    assert check(ZOE, email(ParamFilter("PREF", text_match=TextMatch("1", match_type="equals"))))
    apple = parse(APPLE_CONTACT)  # type=INTERNET;type=pref
    assert check(
        apple, email(ParamFilter("TYPE", text_match=TextMatch("pref", match_type="equals")))
    )


def test_list_values_and_negation() -> None:
    def categories(tm: TextMatch) -> Filter:
        return Filter((PropFilter("CATEGORIES", text_matches=(tm,)),))

    assert check(CYRUS, categories(TextMatch("rock, pop", match_type="equals")))
    assert check(CYRUS, categories(TextMatch("friends", match_type="equals")))
    assert not check(CYRUS, categories(TextMatch("friends", match_type="equals", negate=True)))
    assert check(CYRUS, categories(TextMatch("family", match_type="equals", negate=True)))
    assert not check(OLIVER, categories(TextMatch("family", negate=True)))  # no CATEGORIES


@pytest.mark.parametrize(
    ("match_type", "text", "expected"),
    [
        ("equals", "cyrus daboo", True),
        ("equals", "cyrus", False),
        ("contains", "US DA", True),
        ("contains", "", True),
        ("starts-with", "cyr", True),
        ("starts-with", "daboo", False),
        ("ends-with", "DABOO", True),
        ("ends-with", "cyrus", False),
    ],
)
def test_match_types(match_type: str, text: str, expected: bool) -> None:
    flt = Filter((PropFilter("FN", text_matches=(TextMatch(text, match_type=match_type),)),))
    assert check(CYRUS, flt) is expected
    negated = Filter(
        (PropFilter("FN", text_matches=(TextMatch(text, match_type=match_type, negate=True),)),)
    )
    assert check(CYRUS, negated) is not expected


@pytest.mark.parametrize(
    ("collation", "value", "text", "match_type", "expected"),
    [
        ("i;unicode-casemap", "Straße", "STRASSE", "equals", True),
        ("i;ascii-casemap", "Straße", "STRASSE", "equals", False),
        ("i;unicode-casemap", "ZOË", "zoë", "equals", True),
        ("i;ascii-casemap", "ZOË", "zoë", "equals", False),
        ("i;ascii-casemap", "ZOË", "zo", "starts-with", True),
        ("i;unicode-casemap", "Zoë", "zoe", "contains", True),  # NFKD: e + combining diaeresis
        ("i;unicode-casemap", "Zoë", "zoe", "equals", False),
        ("i;unicode-casemap", "ﬁle", "FILE", "equals", True),  # compatibility ligature
        ("i;unicode-casemap", "Ǆ", "ǆ", "equals", True),
        ("default", "ΣΊΣΥΦΟΣ", "σίσυφος", "equals", True),
        ("i;octet", "Daboo", "daboo", "equals", False),
        ("i;octet", "Daboo", "Dab", "starts-with", True),
    ],
)
def test_collations(collation: str, value: str, text: str, match_type: str, expected: bool) -> None:
    vcard = parse(card("4.0", fn=value))
    flt = Filter(
        (
            PropFilter(
                "FN", text_matches=(TextMatch(text, collation=collation, match_type=match_type),)
            ),
        )
    )
    assert check(vcard, flt) is expected


def test_default_collation_is_unicode_casemap() -> None:
    assert TextMatch("x").collation == "i;unicode-casemap"
    assert set(COLLATIONS) == {"i;ascii-casemap", "i;octet", "i;unicode-casemap"}


def test_names_are_taken_as_stored() -> None:
    """A filter on KIND does not look at Apple's X-ADDRESSBOOKSERVER-KIND."""
    group = parse(APPLE_GROUP)
    assert not check(group, Filter((PropFilter("KIND"),)))
    assert check(
        group, Filter((PropFilter("X-ADDRESSBOOKSERVER-KIND", text_matches=(TextMatch("group"),)),))
    )


def test_stored_bytes_are_evaluated_too() -> None:
    flt = Filter((PropFilter("FN", text_matches=(TextMatch("johnny"),)),))
    assert matches(APPLE_CONTACT, flt)
    assert not matches(APPLE_GROUP, flt)


def test_unindexed_property_needs_the_card() -> None:
    flt = Filter((PropFilter("NOTE"),))
    summary = summarize(CYRUS)
    assert not summary.answers(flt)
    with pytest.raises(ValueError):
        matches(summary, flt)
    assert not matches(CYRUS, flt)


def test_unsupported_collation() -> None:
    with pytest.raises(UnsupportedCollation) as refused:
        TextMatch("x", collation="i;basic")
    assert refused.value.condition == "supported-collation"


@pytest.mark.parametrize(
    "make",
    [
        lambda: TextMatch("x", match_type="fuzzy"),
        lambda: Filter(test="someof"),
        lambda: PropFilter("FN", test="noneof"),
        lambda: PropFilter(""),
        lambda: PropFilter("FN", is_not_defined=True, text_matches=(TextMatch("x"),)),
        lambda: PropFilter("FN", is_not_defined=True, param_filters=(ParamFilter("TYPE"),)),
        lambda: ParamFilter("TYPE", is_not_defined=True, text_match=TextMatch("x")),
    ],
)
def test_invalid_filters(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidFilter) as refused:
        make()
    assert refused.value.condition is None
