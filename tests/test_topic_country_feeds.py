"""Topic and country feeds: what a story is about, the feeds the seeds give, config errors."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import feedparser
import pytest
from conftest import REPO, Workspace, seed_text

from aggregator.countries import item_countries, lead, story_countries
from aggregator.model import StoredItem, Story

NOW = datetime(2024, 12, 5, tzinfo=UTC)


def item(title: str, text: str, item_id: str = "i1", agency: str = "interpol") -> StoredItem:
    return StoredItem(
        source_id="s", origin="s:1", position=0, agency=agency, agency_label=agency,
        title=title, title_key=title.casefold(), text=text, html=None, truncated=False,
        content_hash=item_id, link=None, guid=None, published=NOW, date_source="text",
        item_id=item_id, first_seen=NOW,
    )


def test_the_lead_skips_date_lines_and_datelines() -> None:
    text = ("26 November 2024\n\nLYON, France – Police in Kenya arrested ten suspects.\n\n"
            "Partners in Chile helped.")
    assert lead(text) == "Police in Kenya arrested ten suspects."
    assert lead("November 25, 2024\n\nWASHINGTON, D.C. — A readout.") == "A readout."
    assert lead("LYON, France Vehicle crime in Canada.") == "Vehicle crime in Canada."
    assert lead("") == ""


def test_a_story_is_about_the_countries_of_its_titles_and_leads_not_passing_mentions() -> None:
    # France is only the dateline; Chile only in a later paragraph.
    report = item("Operation nets suspects across Africa",
                  "LYON, France – Police in Kenya and Nigerian investigators arrested ten.\n\n"
                  "Partners in Chile helped.")
    assert item_countries(report) == {"KE", "NG"}
    other = item("Montenegrin police join", "A short text.", item_id="i2", agency="europol")
    assert story_countries(Story("s1", (report, other))) == ("KE", "ME", "NG")


def run_with_config(workspace: Workspace, body: str) -> None:
    workspace.write_config(body)
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr


def country_files(workspace: Workspace) -> set[str]:
    return {n for n in workspace.output_files() if n.startswith("country-")}


def test_the_seeds_give_no_country_feed_at_the_default_minimum(workspace: Workspace) -> None:
    run_with_config(workspace, "")
    assert country_files(workspace) == set()


def test_the_seeds_give_netherlands_and_ukraine_with_two_stories(workspace: Workspace) -> None:
    # README: the Netherlands (the Serbian gang's drugs came from there; MATRIX was found by
    # Dutch authorities) and Ukraine (NATO's foreign ministers; Greece's support). Montenegro
    # is two reports of one story, so one story.
    run_with_config(workspace, "[countries]\nmin_stories = 2\n")
    assert country_files(workspace) == {"country-nl.atom", "country-nl.rss",
                                        "country-ua.atom", "country-ua.rss"}
    netherlands = feedparser.parse((workspace.output / "country-nl.atom").read_bytes())
    assert netherlands.feed.title.startswith("Netherlands")
    assert sorted(e.title for e in netherlands.entries) == [
        "Drug trafficking gang tackled in Germany and Serbia: ten arrests",
        "International operation takes down another encrypted messaging service used by "
        "criminals",
    ]
    ukraine = feedparser.parse((workspace.output / "country-ua.rss").read_bytes())
    assert len(ukraine.entries) == 2
    page = (workspace.output / "index.html").read_text()
    assert "<h3>Countries</h3>" in page and "country-ua.atom" in page
    opml = (workspace.output / "feeds.opml").read_text()
    assert 'text="Countries"' in opml and "country-nl.atom" in opml


def test_a_country_feed_uses_the_same_entry_id_as_the_combined_feed(
    workspace: Workspace,
) -> None:
    run_with_config(workspace, "[countries]\nmin_stories = 2\n")
    combined = {e.id for e in feedparser.parse(
        (workspace.output / "combined.atom").read_bytes()).entries}
    ukraine = {e.id for e in feedparser.parse(
        (workspace.output / "country-ua.atom").read_bytes()).entries}
    assert ukraine and ukraine <= combined


def test_the_shipped_config_publishes_its_example_topics_and_countries(
    workspace: Workspace,
) -> None:
    shutil.copyfile(REPO / "config" / "aggregator.toml", workspace.config)
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    files = workspace.output_files()
    for name in ("topic-cybercrime.atom", "topic-cybercrime.rss", "topic-cybercrime.json",
                 "topic-western-balkans.atom", "country-nl.atom", "country-ua.rss"):
        assert name in files, name
    cyber = json.loads((workspace.output / "topic-cybercrime.json").read_text())
    titles = {i["title"] for i in cyber["items"]}
    assert "Major cybercrime operation nets 1,006 suspects" in titles
    assert "International operation takes down another encrypted messaging service used by " \
           "criminals" in titles
    assert all("_aggregator" in i for i in cyber["items"])
    combined = json.loads((workspace.output / "combined.json").read_text())
    assert {i["id"] for i in cyber["items"]} <= {i["id"] for i in combined["items"]}
    balkans = feedparser.parse((workspace.output / "topic-western-balkans.atom").read_bytes())
    assert {e.title for e in balkans.entries} == {
        "NATO Secretary General discusses security in the Western Balkans with the President "
        "of Montenegro",
        "Drug trafficking gang tackled in Germany and Serbia: ten arrests",
        "Violent Albanian criminal group linked to corruption disrupted via SKY ECC analysis",
    }


def test_a_topic_matches_words_agencies_and_countries(workspace: Workspace) -> None:
    (workspace.seeds / "extra.txt").write_text(seed_text([
        ("Ransomware gang dismantled", "Europol",
         "The Hague, 2 December 2024 – Police in Montenegro took down a ransomware gang."),
        # Not the same event (dedup keeps it apart), about ransomware in Montenegro too:
        # excluded by `not agency:nato` alone.
        ("Allies warned of ransomware against logistics", "NATO",
         "On 9 September 2024, NATO warned its members about ransomware attacks on "
         "military logistics in Montenegro."),
    ]), encoding="utf-8")
    run_with_config(workspace, """
        [[topics]]
        slug = "balkan-ransomware"
        title = "Ransomware in the Balkans"
        query = 'ransomware country:ME not agency:nato'
    """)
    combined = feedparser.parse((workspace.output / "combined.atom").read_bytes())
    assert {"Ransomware gang dismantled", "Allies warned of ransomware against logistics"} <= {
        e.title for e in combined.entries}
    feed = feedparser.parse((workspace.output / "topic-balkan-ransomware.atom").read_bytes())
    assert [e.title for e in feed.entries] == ["Ransomware gang dismantled"]
    assert feed.feed.title == "Ransomware in the Balkans — Test Newswire"


@pytest.mark.parametrize(("body", "key", "reason"), [
    ("[[topics]]\nslug = 'a'\ntitle = 'A'\nquery = 'x'\n"
     "[[topics]]\nslug = 'b'\ntitle = 'B'\nquery = 'any(x y'\n",
     "topics[2].query", "position 8: expected ')'"),
    ("[[topics]]\nslug = 'b'\ntitle = 'B'\nquery = 'country:ZZ'\n",
     "topics[1].query", "position 9: unknown country code 'ZZ'"),
    ("[[topics]]\nslug = 'Bad Slug'\ntitle = 'B'\nquery = 'x'\n", "topics[1].slug", ""),
    ("[[topics]]\nslug = 'a'\ntitle = 'A'\nquery = 'x'\n"
     "[[topics]]\nslug = 'a'\ntitle = 'B'\nquery = 'y'\n", "topics[2].slug", "already"),
    ("[[topics]]\nslug = 'a'\ntitle = 'A'\n", "topics[1].query", "missing required key"),
    ("[[topics]]\nslug = 'a'\ntitle = 'A'\nquery = 'x'\nfilter = 'y'\n", "topics[1].filter",
     "unknown key"),
    ("[countries]\nmin_stories = 0\n", "countries.min_stories", "at least 1"),
])
def test_a_bad_topic_or_countries_table_exits_2_naming_the_key(
    workspace: Workspace, body: str, key: str, reason: str
) -> None:
    workspace.write_config(body)
    result = workspace.run("--once")
    assert result.returncode == 2, result.stderr
    assert f"{key}:" in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert workspace.output_files() == {}


def test_montenegro_is_two_reports_of_one_story(workspace: Workspace) -> None:
    run_with_config(workspace, "[countries]\nmin_stories = 1\n")
    montenegro = feedparser.parse((workspace.output / "country-me.atom").read_bytes())
    assert len(montenegro.entries) == 1
    assert "Also reported" in montenegro.entries[0].content[0].value


def test_an_edited_story_moves_to_the_feeds_of_what_it_is_now_about(
    workspace: Workspace,
) -> None:
    extra = workspace.seeds / "extra.txt"
    extra.write_text(seed_text([("Police in Kenya arrest traffickers", "Interpol",
                                 "On 2 December 2024, officers arrested ten suspects.")]),
                     encoding="utf-8")
    body = ("[countries]\nmin_stories = 1\n[[topics]]\nslug = 'kenya'\ntitle = 'Kenya'\n"
            "query = 'country:KE'\n")
    run_with_config(workspace, body)
    assert "country-ke.atom" in workspace.output_files()
    kenya = feedparser.parse((workspace.output / "topic-kenya.atom").read_bytes())
    assert [e.title for e in kenya.entries] == ["Police in Kenya arrest traffickers"]
    extra.write_text(seed_text([("Police in Ghana arrest traffickers", "Interpol",
                                 "On 2 December 2024, officers arrested ten suspects.")]),
                     encoding="utf-8")
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    files = workspace.output_files()
    assert "country-gh.atom" in files
    assert "country-ke.atom" not in (workspace.output / "feeds.opml").read_text()
    assert feedparser.parse((workspace.output / "topic-kenya.atom").read_bytes()).entries == []
