"""The evidence dedup reads from a lead (vocabulary, counts, amounts, places, organisations)
and the fitted scorer's shape."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources

import pytest

from aggregator import entities
from aggregator.config import AgencyConfig, DedupConfig
from aggregator.dedup import Features, compare, evidence, extract_many, scorer, vocabulary
from aggregator.dedup.features import day_number
from aggregator.dedup.rarity import language
from aggregator.model import RawItem, StoredItem
from aggregator.normalize import AgencyDirectory, normalize


def words(text: str) -> list[str]:
    return vocabulary.words_of(text)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Ransomware gang behind attacks on hospitals taken down", {"cyber"}),
        ("Call centres that sold fake investments shut in Albania", {"fraud"}),
        ("Network trafficking in human beings for forced labour dismantled",
         {"human-trafficking"}),
        ("Cocaine shipment seized in the port of Antwerp", {"drugs"}),
        ("Looted antiquities returned to Italy", {"cultural-goods"}),
    ],
)
def test_kinds_of_crime_are_read_through_their_synonyms(text: str, kinds: set[str]) -> None:
    assert kinds <= vocabulary.crime_kinds(words(text))


def test_opposed_kinds_of_event_keep_arrests_and_a_sentencing_apart() -> None:
    arrests = frozenset(vocabulary.event_kinds(words("Police arrested 12 suspects in raids")))
    sentence = frozenset(vocabulary.event_kinds(words("Ringleader sentenced to 9 years")))
    assert vocabulary.opposed_events(arrests, sentence) == ("enforcement", "sentencing")
    launch = frozenset(vocabulary.event_kinds(words("INTERPOL launches a campaign")))
    results = frozenset(vocabulary.event_kinds(words("Results of the operation published")))
    assert vocabulary.opposed_events(launch, results) == ("launch", "results")
    assert vocabulary.opposed_events(arrests, arrests) is None


def test_counts_are_typed_and_skip_dates_and_amounts() -> None:
    found = vocabulary.counts(
        "On 27 November 2024 police arrested eighteen suspects and searched 4 call centres; "
        "1 150 migrants were identified and EUR 3 million seized at 10:30.")
    assert ("arrests", 18.0) in found
    assert ("searches", 4.0) in found
    assert ("migrants", 1150.0) in found
    assert not any(value in (27.0, 2024.0, 3.0, 10.0) for _, value in found)


def test_counts_agree_within_a_tolerance() -> None:
    assert vocabulary.agree(8, 9) and vocabulary.agree(60, 63) and vocabulary.agree(2, 3)
    assert not vocabulary.agree(10, 40) and not vocabulary.agree(100, 130)


def test_amounts_are_normalized_money_and_masses() -> None:
    found = vocabulary.amounts("Assets worth EUR 3.2 million and over €40 000 were frozen; "
                               "2.5 tonnes of cocaine and 450 kg of cannabis were seized.")
    assert ("money", 3_200_000.0) in found
    assert ("money", 40_000.0) in found
    assert ("kg", 2500.0) in found
    assert ("kg", 450.0) in found


def test_places_name_their_country_and_regions_have_none() -> None:
    found = vocabulary.places(words("Raids in Tirana and The Hague; routes via the Western "
                                    "Balkans"))
    assert found == {"tirana": "AL", "the hague": "NL", "western balkans": "-"}


def test_organisations_named() -> None:
    assert vocabulary.organisations(words(
        "INTERPOL Secretary General visits Europol and the Joint Chiefs of Staff")) == {
        "interpol", "europol", "jcs"}


def test_language_rarity_counts_rare_words_fully_and_common_ones_little() -> None:
    assert language("ransomware") == 1.0
    assert language("the") == 0.1
    assert 0.1 < language("arrest") < 0.6


def test_the_shipped_scorer_matches_the_code_and_the_config_defaults() -> None:
    data = json.loads(resources.files("aggregator.dedup").joinpath("scorer.json").read_text())
    assert set(data["coefficients"]) == set(scorer.FEATURES)
    assert data["fitted_on"] and all("test" not in name for name in data["fitted_on"])
    defaults = DedupConfig()
    assert defaults.merge_threshold == data["merge_threshold"]
    assert defaults.agree_threshold == data["agree_threshold"]


def test_contributions_explain_the_log_odds() -> None:
    values = [0.0] * len(scorer.FEATURES)
    values[scorer.FEATURES.index("names")] = 1.0
    values[scorer.FEATURES.index("same_agency")] = 1.0
    parts = dict(scorer.contributions(values))
    assert set(parts) == {"names", "same_agency"}
    model = scorer.shipped()
    logit = model.intercept + sum(parts.values())
    assert scorer.probability(values) == pytest.approx(1 / (1 + 2.718281828459045 ** -logit))


# -- the vetoes README promises --------------------------------------------------------------

_AGENCIES = AgencyDirectory.from_config({s: AgencyConfig(s, s.upper()) for s in
                                         ("nato", "europol", "eurojust", "interpol", "jcs")})
_SEEN = datetime(2025, 3, 20, tzinfo=UTC)


def _features(*items: tuple[str, str, str]) -> list[Features]:
    stored = []
    for n, (agency, title, text) in enumerate(items):
        raw = RawItem(source_id="s", origin=f"o{n}", agency_label=agency, title=title,
                      content=text, content_is_html=False, link=None, guid=None,
                      published=None, position=n)
        item = normalize(raw, _AGENCIES, _SEEN).item
        assert item is not None
        stored.append(StoredItem(**{k: getattr(item, k) for k in item.__slots__},
                                 item_id=f"i{n}", first_seen=_SEEN))
    return extract_many(stored)


def test_event_dates_a_few_days_apart_are_evidence_but_a_meeting_on_another_day_is_not() -> None:
    incident, statement, other_meeting, meeting = _features(
        ("europol", "Undersea cable damaged in the Baltic Sea",
         "On 7 March 2025 an undersea cable between Finland and Estonia was damaged."),
        ("nato", "NATO statement on the damaged Baltic Sea cable",
         "On 9 March 2025 NATO Allies discussed the damage to the Baltic Sea cable."),
        ("nato", "Secretary General meets the Prime Minister of Finland",
         "The Secretary General met the Prime Minister of Finland on 10 March 2025."),
        ("nato", "Secretary General meets the Prime Minister of Finland",
         "The Secretary General met the Prime Minister of Finland on 11 March 2025."),
    )
    config = DedupConfig()
    assert compare(incident, statement, config).veto is None
    far = _features(
        ("europol", "Cable damaged", "On 1 March 2025 a cable in the Baltic Sea was damaged."),
        ("nato", "Cable statement", "On 9 March 2025 Allies discussed the Baltic Sea cable."),
    )
    assert "different event dates" in (compare(*far, config).veto or "")
    assert "different event dates" in (compare(other_meeting, meeting, config).veto or "")


def test_titles_naming_other_countries_stay_apart_unless_each_lead_names_the_other() -> None:
    victims, call_centres, elsewhere = _features(
        ("europol", "Investment fraud: victims in Germany and Austria",
         "Call centres in Bulgaria and Serbia defrauded victims in Germany and Austria."),
        ("eurojust", "Call centres shut in Bulgaria and Serbia",
         "Prosecutors in Bulgaria and Serbia shut call centres that defrauded Germans."),
        ("eurojust", "Drug trafficking network dismantled in Spain",
         "Spanish police dismantled a cocaine network in Valencia."),
    )
    config = DedupConfig()
    assert compare(victims, call_centres, config).veto is None
    assert "titles name different countries" in (compare(victims, elsewhere, config).veto or "")


def test_the_end_of_a_span_is_not_an_event_date() -> None:
    # "taking part through 18 June": when an exercise ends, not the day it is reported on; the
    # other agency dates the start. Neither a veto nor a date of the event.
    start, report, later = _features(
        ("nato", "Maritime exercise gets under way in the Baltic Sea",
         "The annual maritime exercise began on 6 June 2025 with 40 ships from 16 Allies."),
        ("jcs", "Sailors train with Allies in Baltic Sea exercise",
         "WASHINGTON — 40 ships are taking part in the Baltic Sea exercise through 18 June 2025."),
        ("jcs", "Sailors train with Allies in Baltic Sea exercise",
         "WASHINGTON — 40 ships took part in the Baltic Sea exercise on 18 June 2025."),
    )
    assert report.event_dates == ()
    assert later.event_dates != ()
    config = DedupConfig()
    assert compare(start, report, config).veto is None
    assert "different event dates" in (compare(start, later, config).veto or "")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Readout of the Chairman's call with the Republic of Korea Chairman", "KR"),
        ("Police of Bosnia and Herzegovina seized rifles", "BA"),
        ("Peacekeepers in the Democratic Republic of the Congo", "CD"),
    ],
)
def test_country_names_with_a_lower_case_word_inside_are_read_whole(text: str, code: str) -> None:
    assert code in entities.names_and_countries(text)[1]


def test_calls_with_the_chiefs_of_two_countries_stay_apart() -> None:
    korea, japan = _features(
        ("jcs", "Readout of Chairman's Call With Republic of Korea Chairman of the Joint Chiefs",
         "The Chairman spoke by phone today with Gen. Jeong Kyeong-doo, Chairman of the Republic"
         " of Korea Joint Chiefs of Staff. The leaders discussed North Korea's missile tests."),
        ("jcs", "Readout of Chairman's Call With Japan's Chief of Staff, Joint Staff",
         "The Chairman spoke by phone today with Adm. Katsutoshi Kawano, Chief of Staff of the "
         "Japan Joint Staff. The leaders discussed North Korea's missile tests."),
    )
    assert "titles name different countries" in (compare(korea, japan, DedupConfig()).veto or "")


def test_an_undated_item_is_timed_by_the_event_it_dates() -> None:
    # Europol's feed gives no dates, and "on 7 March" (no year) gives the item none either;
    # it still places the item in time against a report published on 9 March. With no date
    # in the text at all, an item is undated.
    arrests, report, bare = _features(
        ("europol", "Eleven arrested for phone scams",
         "Police in Spain arrested eleven members of a phone scam network on 7 March."),
        ("eurojust", "Call centres of phone scammers shut",
         "Judicial authorities in Spain shut four call centres of a phone scam network."),
        ("europol", "Phone scam network dismantled",
         "Police in Spain dismantled a phone scam network and arrested eleven suspects."),
    )
    report = replace(report, day=day_number(datetime(2025, 3, 9, tzinfo=UTC)))
    assert arrests.day is None and arrests.event_dates
    timed = evidence(arrests, report)
    assert timed.get("undated") == 0.0 and timed.get("days_apart") == 2 / 14
    untimed = evidence(bare, report)
    assert untimed.get("undated") == 1.0 and untimed.get("days_apart") == 0.0
