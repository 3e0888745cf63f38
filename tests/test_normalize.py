"""Normalize (pure): agencies, cleaning, truncation, stated dates, fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.config import AgencyConfig
from aggregator.dates import publication_date
from aggregator.model import RawItem
from aggregator.normalize import (
    AgencyDirectory,
    clean_text,
    content_hash,
    derive_slug,
    is_truncated,
    normalize,
    title_from_text,
    title_key,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
AGENCIES = AgencyDirectory.from_config({
    "nato": AgencyConfig("nato", "NATO"),
    "interpol": AgencyConfig("interpol", "INTERPOL", ("International Criminal Police",)),
    "jcs": AgencyConfig("jcs", "US Joint Chiefs of Staff", ("US Defense Joint Chiefs of Staff",)),
})


def raw(
    title: str = "Title", content: str = "Body.", agency: str = "NATO", **kw: object
) -> RawItem:
    return RawItem(source_id="s", origin="seeds/a.txt:12", agency_label=agency, title=title,
                   content=content, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "slug"),
    [
        ("NATO", "nato"),
        ("nato", "nato"),
        ("  US  Defense Joint Chiefs of Staff ", "jcs"),
        ("Interpol (news and events)", "interpol"),
        ("International Criminal Police", "interpol"),
    ],
)
def test_agency_names_aliases_and_qualifiers_resolve(label: str, slug: str) -> None:
    assert AGENCIES.resolve(label) == (slug, True)


def test_unknown_agency_is_published_under_a_derived_slug_with_a_warning() -> None:
    result = normalize(raw(agency="Bundeskriminalamt (BKA)"), AGENCIES, NOW)
    assert result.item is not None
    assert result.item.agency == "bundeskriminalamt-bka"
    assert result.item.agency_label == "Bundeskriminalamt (BKA)"
    assert result.unknown_agency == "Bundeskriminalamt (BKA)"
    assert normalize(raw(agency="NATO"), AGENCIES, NOW).unknown_agency is None


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Garda Síochána", "garda-siochana"), ("combined", "agency-combined"),
     ("Полиция", None), ("!!!", None)],
)
def test_derived_slugs_are_file_safe(name: str, slug: str | None) -> None:
    derived = derive_slug(name)
    assert derived == slug if slug else derived.startswith("agency-")
    assert derived == derive_slug(name)
    assert all(c.isalnum() or c == "-" for c in derived)


def test_share_bar_and_social_lead_in_are_removed_paragraphs_kept() -> None:
    text = (
        "WASHINGTON — The readout follows.\n\nSecond paragraph.\n\n"
        "For more Joint Staff news, visit: www.jcs.mil.\n"
        "Connect with the Joint Staff on social media: \n"
        "FacebookTwitterInstagramYouTube,\nLinkedIn and Flickr.\n"
    )
    cleaned = clean_text(text)
    assert cleaned == (
        "WASHINGTON — The readout follows.\n\nSecond paragraph.\n\n"
        "For more Joint Staff news, visit: www.jcs.mil."
    )


def test_whitespace_and_invisible_characters_are_tidied() -> None:
    cleaned = clean_text("  a\u00a0 b\u200b c  \n\n\n\n d\te \x07\r\n")
    assert cleaned == "a b c\n\nd e"


def test_glued_sentences_are_separated() -> None:
    assert clean_text("illegally obtained information.A central hub") == (
        "illegally obtained information. A central hub"
    )


@pytest.mark.parametrize(
    ("text", "truncated"),
    [("A summary cut short…", True), ("Cut with dots...", True), ("Cut [...]", True),
     ("A full sentence.", False), ("Ellipsis… inside, then more.", False)],
)
def test_truncated_summaries_are_detected(text: str, truncated: bool) -> None:
    assert is_truncated(text) is truncated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("On Wednesday 4 December 2024, NATO Secretary General met ...", "2024-12-04"),
        ("The Hague, 26 November 2024 – Eurojust supported ...", "2024-11-26"),
        ("November 25, 2024\n\nWASHINGTON, D.C. — A readout.", "2024-11-25"),
        ("26 November 2024\n\nUNITED NATIONS, New York – An address.", "2024-11-26"),
        ("Ministers met on Tuesday (26 November 2024) in Athens.", "2024-11-26"),
        ("From 19 to 21 November 2024, the committee held its meeting.", "2024-11-21"),
        ("Ministers wrapped up meetings on Wednesday (December 4) in Brussels.", "2024-12-04"),
        ("The arrangement is in force since 1 May 2021 and covers data.", None),
        ("Investigations began in the autumn of 2022.", None),
        ("The meeting on 4 December was productive.", None),
        ("It will take place on 14 March 2027 in Rome.", None),
    ],
)
def test_publication_date_is_taken_only_when_the_text_states_it(
    text: str, expected: str | None
) -> None:
    found = publication_date(text, NOW)
    assert (found.date().isoformat() if found else None) == expected


def test_item_dates_record_where_they_came_from() -> None:
    stated = normalize(raw(content="On Monday (25 November 2024), ministers met."), AGENCIES, NOW)
    unstated = normalize(raw(content="Ministers met."), AGENCIES, NOW)
    given = datetime(2024, 11, 2, 8, 30, tzinfo=UTC)
    from_feed = normalize(raw(content="On Monday (25 November 2024) x.", published=given),
                          AGENCIES, NOW)
    assert stated.item and stated.item.date_source == "text"
    assert stated.item.published == datetime(2024, 11, 25, 12, 0, tzinfo=UTC)
    assert unstated.item and (unstated.item.published, unstated.item.date_source) == (None, None)
    assert from_feed.item and (from_feed.item.published, from_feed.item.date_source) == (
        given, "source")


def test_missing_title_is_made_from_text_and_empty_items_are_skipped() -> None:
    made = normalize(raw(title="  ", content="First sentence here. Second one."), AGENCIES, NOW)
    assert made.item is not None and made.item.title == "First sentence here"
    assert made.warnings[-1].endswith("item has no title; using 'First sentence here'")
    nothing = normalize(raw(title="", content=" \n "), AGENCIES, NOW)
    assert nothing.item is None
    assert "no title, link or text" in nothing.warnings[0]


def test_long_first_sentence_title_is_cut_at_a_word() -> None:
    title = title_from_text("word " * 60)
    assert title.endswith("…") and len(title) <= 91 and "  " not in title


def test_title_key_and_content_hash_ignore_case_punctuation_and_spacing() -> None:
    assert title_key("NATO’s  Secretary-General: meets!") == title_key(
        "nato s secretary general meets")
    assert content_hash("A  b\nC") == content_hash("a b c")
    assert content_hash("a b c") != content_hash("a b d")


def test_control_characters_never_reach_titles_or_text() -> None:
    result = normalize(raw(title="Bad\x00 ti\x1ftle\ufffe", content="x\x0by\x7f z"), AGENCIES, NOW)
    assert result.item is not None
    assert result.item.title == "Bad title"
    assert result.item.text == "xy z"


def test_html_content_is_sanitized_and_turned_into_text() -> None:
    item = normalize(raw(
        content='<p onclick="x()">Hello <script>alert(1)</script><a href="javascript:evil()">'
                'link</a></p><p>Second <a href="/rel">rel</a></p>',
        content_is_html=True, link="https://www.nato.int/news/1.htm",
    ), AGENCIES, NOW).item
    assert item is not None and item.html is not None
    assert "script" not in item.html and "onclick" not in item.html
    assert "javascript" not in item.html
    assert 'href="https://www.nato.int/rel"' in item.html
    assert item.text == "Hello link\n\nSecond rel"


def test_tags_in_plain_text_titles_and_bodies_are_dropped_with_script_content() -> None:
    item = normalize(raw(title='<b>Bold</b> title <script>x()</script>',
                         content='Body <img src=x onerror="alert(1)"> text & more < less'),
                     AGENCIES, NOW).item
    assert item is not None
    assert item.title == "Bold title"
    assert item.text == "Body text & more < less"
    plain = normalize(raw(title="Budget < 2% & rising", content="a < b > c"), AGENCIES, NOW).item
    assert plain is not None and (plain.title, plain.text) == ("Budget < 2% & rising", "a < b > c")
