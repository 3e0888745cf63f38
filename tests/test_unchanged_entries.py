"""Entries the store holds unchanged are neither normalized nor analysed again (issue 14):
a source with 2 new entries costs 2 entries of work, and stores what a cold run would."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from xml.sax.saxutils import escape

from conftest import SEEDS, Workspace, seed_text
from pytest_httpserver import HTTPServer

_SOURCE_LINE = re.compile(r"source=(?P<name>\S+) items=(?P<items>\d+) new=(?P<new>\d+) "
                          r"updated=(?P<updated>\d+) gone=\d+ prepared=(?P<prepared>\d+)")

NEW_SEEDS = [
    ("Europol dismantles a counterfeit medicine ring in Portugal and Spain", "Europol",
     "Officers in Lisbon and Madrid arrested seven suspects on 3 March 2026 and seized "
     "counterfeit medicines worth EUR 2 million."),
    ("Interpol operation rescues 41 trafficking victims in West Africa", "Interpol",
     "An operation across Ghana, Nigeria and Senegal freed 41 victims of human trafficking "
     "and led to 12 arrests, Interpol said on 4 March 2026."),
]


def source_lines(stderr: str) -> dict[str, dict[str, int]]:
    """The -v line of each source a run stored: its counts by name."""
    return {m["name"]: {k: int(v) for k, v in m.groupdict().items() if k != "name"}
            for m in _SOURCE_LINE.finditer(stderr)}


def stored_items(ws: Workspace) -> list[tuple[object, ...]]:
    """Every stored item as the store holds it, in id order: but the digest column, and
    the position (an unchanged item keeps the one it was stored with, as it always has)."""
    with sqlite3.connect(ws.state) as db:
        return db.execute(
            "SELECT item_id, source_id, origin, agency, agency_label, title, "
            "title_key, text, html, truncated, content_hash, link, guid, published, "
            "date_source, first_seen, present, story_id IS NULL, features FROM items "
            "ORDER BY item_id").fetchall()


def test_a_seed_file_with_two_new_items_prepares_two(workspace: Workspace, tmp_path: Path
                                                      ) -> None:
    first = workspace.run("--once", "-v")
    assert first.returncode == 0, first.stderr
    target = sorted(workspace.seeds.glob("*.txt"))[0]
    name = target.relative_to(workspace.root).as_posix()
    before = source_lines(first.stderr)[name]
    assert before["prepared"] == before["items"] > 0
    # Two items at the end: the others keep their lines, so nothing else about them moved.
    text = target.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + seed_text(NEW_SEEDS)
    target.write_text(text, encoding="utf-8")

    second = workspace.run("--once", "-v")
    assert second.returncode == 0, second.stderr
    counts = source_lines(second.stderr)[name]
    assert counts == {"items": before["items"] + 2, "new": 2, "updated": 0, "prepared": 2}

    # What it stored is what a cold run over the same files stores.
    cold = Workspace(tmp_path / "cold")
    cold.seeds.mkdir(parents=True)
    for path in SEEDS.glob("*.txt"):
        shutil.copyfile(path, cold.seeds / path.name)
    shutil.copyfile(target, cold.seeds / target.name)
    cold.write_config("")
    assert cold.run("--once").returncode == 0
    assert stored_items(workspace) == stored_items(cold)


def rss(entries: list[tuple[int, str, str]]) -> bytes:
    items = "".join(
        f"<item><title>{escape(title)}</title><guid isPermaLink=\"false\">{escape(title)}"
        f"</guid><link>https://agency.test/{number}</link>"
        f"<pubDate>Sun, {number:02d} Nov 2026 10:00:00 GMT</pubDate>"
        f"<description>{escape(body)}</description></item>"
        for number, title, body in entries)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Agency news</title><link>https://agency.test/</link>"
            f"<description>News</description>{items}</channel></rss>").encode()


FEED_ENTRIES = [
    (number, f"Operation {word} ends with {number} arrests",
     f"<p>Police in {city} arrested <b>{number}</b> suspects in operation {word}.</p>"
     f"<p>The investigation into {word} began in {city} last year.</p>")
    for number, (word, city) in enumerate([
        ("Alder", "Lyon"), ("Birch", "Ghent"), ("Cedar", "Turin"), ("Damson", "Graz"),
        ("Elm", "Cork"), ("Fir", "Porto"), ("Gorse", "Brno")], start=3)
]


def test_a_feed_with_two_new_entries_prepares_two(tmp_path: Path, loopback: HTTPServer
                                                   ) -> None:
    url = loopback.url_for("/news.xml")
    config = f'[[sources]]\ntype = "feed"\nagency = "nato"\nurl = "{url}"\n'
    loopback.expect_request("/news.xml").respond_with_data(
        rss(FEED_ENTRIES[2:]), content_type="application/rss+xml")
    ws = Workspace(tmp_path / "warm")
    ws.write_config(config, seeds=False)
    first = ws.run("--once", "-v")
    assert first.returncode == 0, first.stderr
    assert source_lines(first.stderr)[url]["prepared"] == 5

    # Two new entries on top: the five others move down the feed.
    loopback.clear()
    loopback.expect_request("/news.xml").respond_with_data(
        rss(FEED_ENTRIES), content_type="application/rss+xml")
    second = ws.run("--once", "-v")
    assert second.returncode == 0, second.stderr
    assert source_lines(second.stderr)[url] == {"items": 7, "new": 2, "updated": 0,
                                                "prepared": 2}

    cold = Workspace(tmp_path / "cold")
    cold.write_config(config, seeds=False)
    assert cold.run("--once").returncode == 0
    assert stored_items(ws) == stored_items(cold)
