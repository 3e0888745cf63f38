"""The topic query language: parsing into an AST, errors with positions, matching stories."""

from __future__ import annotations

import pytest

from aggregator.query import (
    AgencyIs,
    AllOf,
    AnyOf,
    CountryIs,
    Not,
    Phrase,
    QueryError,
    StoryFacts,
    Word,
    matches,
    parse_query,
)


def test_a_query_parses_into_its_ast() -> None:
    query = 'any(ransomware, phish* "Western Balkans") agency:Europol not country:me'
    assert parse_query(query) == AllOf((
        AnyOf((Word("ransomware"), Word("phish", prefix=True),
               Phrase(("western", "balkans")))),
        AgencyIs("europol"),
        Not(CountryIs("ME")),
    ))


def test_the_readme_example_parses() -> None:
    assert parse_query('any(country:RS country:ME "Western Balkans") not agency:nato') == AllOf((
        AnyOf((CountryIs("RS"), CountryIs("ME"), Phrase(("western", "balkans")))),
        Not(AgencyIs("nato")),
    ))


def test_one_term_is_itself_and_nesting_works() -> None:
    assert parse_query("Ukraine") == Word("ukraine")
    assert parse_query("all(any(a b) not c)") == AllOf((AnyOf((Word("a"), Word("b"))),
                                                       Not(Word("c"))))
    # Accents and case fold away; a hyphenated word is its parts in order.
    assert parse_query("Türkiye") == Word("turkiye")
    assert parse_query("cyber-attack") == Phrase(("cyber", "attack"))


@pytest.mark.parametrize(("query", "position", "reason"), [
    ("", 1, "empty query"),
    ("any(a b", 8, "expected ')'"),
    ("a )", 3, "')' without '('"),
    ('"western balkans', 1, "unclosed quote"),
    ("country:XX", 9, "unknown country code 'XX'"),
    ("agency:Bad_Slug!", 8, "not an agency slug"),
    ("colour:red", 1, "unknown field 'colour'"),
    ("any a", 5, "expected '(' after any"),
    ("all()", 1, "all() needs at least one term"),
    ("not", 4, "expected a term"),
    ("(a)", 1, "'(' must follow any or all"),
    ('""', 1, "empty phrase"),
])
def test_a_bad_query_names_the_position_and_the_reason(
    query: str, position: int, reason: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.position == position, caught.value
    assert reason in caught.value.reason


FACTS = StoryFacts.of(
    ["Ransomware gang taken down", "Investigators from the Netherlands took down a "
     "ransomware-as-a-service platform used in phishing campaigns across the Western Balkans."],
    agencies=["europol", "eurojust"], countries=["NL"],
)


@pytest.mark.parametrize(("query", "expected"), [
    ("ransomware", True),
    ("RANSOMWARE", True),
    ("ransom", False),  # whole words only
    ("ransom*", True),
    ("phish*", True),
    ('"western balkans"', True),
    ('"balkans western"', False),
    ("any(ddos malware)", False),
    ("any(ddos phishing)", True),
    ("all(ransomware ddos)", False),
    ("agency:europol", True),
    ("agency:nato", False),
    ("country:NL", True),
    ("country:ME", False),
    ("not agency:nato", True),
    ("ransomware not country:NL", False),
    ("any(country:ME country:RS \"western balkans\")", True),
])
def test_matching(query: str, expected: bool) -> None:
    assert matches(parse_query(query), FACTS) is expected
