"""Unpublishing (issue 12, problem 6): a source removed from the config, an agency with
nothing left, and `aggregate forget` taking an item or story down for good. Real runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from conftest import Workspace, seed_text
from daemon_process import DaemonProcess, poll
from pytest_httpserver import HTTPServer

ATOM = "{http://www.w3.org/2005/Atom}"
MONTENEGRO = "NATO Secretary General meets the President of Montenegro"
EXTRA_SOURCE = '[[sources]]\ntype = "seedfile"\npath = "../extra/*.txt"\n'


def combined(workspace: Workspace) -> list[dict[str, Any]]:
    feed = json.loads((workspace.output / "combined.json").read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = feed["items"]
    return items


def story_with(workspace: Workspace, title: str) -> dict[str, Any] | None:
    return next((item for item in combined(workspace)
                 if any(m["title"] == title for m in item["_aggregator"]["members"])), None)


def atom_entries(workspace: Workspace, name: str) -> list[ET.Element]:
    return ET.parse(workspace.output / name).getroot().findall(f"{ATOM}entry")


def bundled_item(title: str, workspace: Workspace) -> tuple[str, str, str]:
    """(title, agency, body) of a bundled seed item, to copy into another source."""
    for path in workspace.seeds.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        start = text.find(f"{title}\n\nSource: ")
        if start >= 0:
            rest = text[start:].split("\n\n", 3)
            return title, rest[1].removeprefix("Source: "), rest[2]
    raise AssertionError(f"no bundled item {title!r}")


def test_a_removed_source_stops_contributing_and_its_agency_keeps_an_empty_feed(
    workspace: Workspace,
) -> None:
    extra = workspace.root / "extra"
    extra.mkdir()
    title, agency, body = bundled_item(MONTENEGRO, workspace)
    (extra / "more.txt").write_text(seed_text([
        (title, agency, body),  # a re-post of a bundled item: it joins that story
        ("Frontex deploys officers to the external border", "Frontex",
         "Warsaw, 3 December 2024. Frontex deployed officers."),
    ]), encoding="utf-8")
    workspace.write_config(EXTRA_SOURCE + '[agencies.frontex]\nname = "Frontex"\n')
    assert workspace.run("--once").returncode == 0
    before = story_with(workspace, MONTENEGRO)
    assert before is not None and len(before["_aggregator"]["members"]) == 3
    assert len(atom_entries(workspace, "frontex.atom")) == 1
    frontex_id = atom_entries(workspace, "frontex.atom")[0].findtext(f"{ATOM}id")

    workspace.write_config('[agencies.frontex]\nname = "Frontex"\n')  # the source is removed
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    assert "unpublished the items of sources no longer in the config" in result.stderr
    after = story_with(workspace, MONTENEGRO)
    assert after is not None and after["id"] == before["id"]  # the story keeps its id
    assert len(after["_aggregator"]["members"]) == 2
    assert not any("Frontex" in item["title"] for item in combined(workspace))
    # The agency's subscribers get an empty, valid feed, no 404; OPML and page drop it.
    assert atom_entries(workspace, "frontex.atom") == []
    ET.parse(workspace.output / "frontex.rss")
    assert "frontex" not in (workspace.output / "feeds.opml").read_text(encoding="utf-8")
    assert "frontex.atom" not in (workspace.output / "index.html").read_text(encoding="utf-8")
    # Still empty (and kept) on the runs after.
    assert workspace.run("--once").returncode == 0
    assert atom_entries(workspace, "frontex.atom") == []
    # A source switched off is not a source removed.
    workspace.write_config(EXTRA_SOURCE.replace('"seedfile"\n', '"seedfile"\nenabled = false\n')
                           + '[agencies.frontex]\nname = "Frontex"\n')
    assert workspace.run("--once").returncode == 0
    assert len(story_with(workspace, MONTENEGRO)["_aggregator"]["members"]) == 2  # type: ignore[index]
    # Configured again, the source brings its items back under the same ids.
    workspace.write_config(EXTRA_SOURCE + '[agencies.frontex]\nname = "Frontex"\n')
    assert workspace.run("--once").returncode == 0
    assert [e.findtext(f"{ATOM}id") for e in atom_entries(workspace, "frontex.atom")] == [
        frontex_id]
    assert "frontex" in (workspace.output / "feeds.opml").read_text(encoding="utf-8")
    back = story_with(workspace, MONTENEGRO)
    assert back is not None and back["id"] == before["id"]
    assert len(back["_aggregator"]["members"]) == 3


def test_forget_a_story_by_its_first_characters(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    story = story_with(workspace, MONTENEGRO)
    assert story is not None
    prefix = story["id"].removeprefix("urn:uuid:")[:8]
    result = workspace.run("forget", prefix)
    assert result.returncode == 0, result.stderr
    assert f"Forgot story {story['id']} for good: 2 items taken down." in result.stdout
    assert MONTENEGRO in result.stdout and "Republished" in result.stdout
    assert story_with(workspace, MONTENEGRO) is None
    assert len(combined(workspace)) == 18
    # The source is read again (it changed): the forgotten items do not come back.
    for path in workspace.seeds.glob("*.txt"):
        if MONTENEGRO in path.read_text(encoding="utf-8"):
            path.write_text(path.read_text(encoding="utf-8") + "\n" + seed_text([
                ("NATO welcomes a new partner", "NATO", "On 5 December 2024 NATO met.")]))
    rerun = workspace.run("--once")
    assert rerun.returncode == 0, rerun.stderr
    assert story_with(workspace, MONTENEGRO) is None
    assert len(combined(workspace)) == 19  # the new item only


def test_forget_an_item_of_a_live_feed_for_good(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    loopback.expect_request("/feed").respond_with_data(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        "<link>https://nato.example.test/</link><description>d</description>"
        "<item><title>Withdrawn release on exercise Steadfast</title><guid>w-1</guid>"
        "<link>https://nato.example.test/withdrawn</link>"
        "<description>Text of the withdrawn release.</description></item>"
        "<item><title>Port visit of the standing maritime group in Split</title>"
        "<link>https://nato.example.test/by-link</link>"
        "<description>Ships of the group called at Split, Croatia.</description></item>"
        "<item><title>Kept release on the summit</title><guid>k-1</guid>"
        "<description>Text of the kept release.</description></item>"
        "</channel></rss>", content_type="application/rss+xml")
    workspace.write_config(f'[[sources]]\ntype = "feed"\nagency = "nato"\n'
                           f'url = "{loopback.url_for("/feed")}"\n', seeds=False)
    assert workspace.run("--once").returncode == 0
    # The id NATO's own feed gives the entry (derived from the story id) works too.
    entry = next(e for e in atom_entries(workspace, "nato.atom")
                 if (e.findtext(f"{ATOM}title") or "").startswith("Withdrawn"))
    result = workspace.run("forget", entry.findtext(f"{ATOM}id") or "")
    assert result.returncode == 0, result.stderr
    assert "Withdrawn release on exercise Steadfast" in result.stdout
    by_link = workspace.run("forget", "https://nato.example.test/by-link")
    assert by_link.returncode == 0, by_link.stderr
    assert "Port visit of the standing maritime group in Split" in by_link.stdout
    titles = [item["title"] for item in combined(workspace)]
    assert titles == ["Kept release on the summit"]
    # The feed still lists it: a run fetches it again, and it stays down.
    rerun = workspace.run("--once", "-v")
    assert rerun.returncode == 0, rerun.stderr
    assert "forgotten=2" in rerun.stderr
    assert [item["title"] for item in combined(workspace)] == ["Kept release on the summit"]


def test_an_item_stored_again_while_it_was_forgotten_never_reaches_a_story(
    workspace: Workspace,
) -> None:
    # Another node read the source just before `forget` wrote the tombstones: its check
    # found none, and it stored the items again after they were removed, not yet placed.
    import sqlite3

    assert workspace.run("--once").returncode == 0
    story = story_with(workspace, MONTENEGRO)
    assert story is not None
    with sqlite3.connect(workspace.state) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute(
            "SELECT * FROM items WHERE story_id = ?", (story["id"].removeprefix("urn:uuid:"),))]
    assert len(rows) == 2
    assert workspace.run("forget", story["id"]).returncode == 0
    with sqlite3.connect(workspace.state) as db:
        columns = list(rows[0])
        db.executemany(
            f"INSERT INTO items ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))})",
            [[None if c == "story_id" else row[c] for c in columns] for row in rows])
    rerun = workspace.run("--once", "-v")
    assert rerun.returncode == 0, rerun.stderr
    assert "forgotten=2" in rerun.stderr
    assert story_with(workspace, MONTENEGRO) is None
    assert len(combined(workspace)) == 18
    with sqlite3.connect(workspace.state) as db:
        ids = [row["item_id"] for row in rows]
        assert db.execute(f"SELECT count(*) FROM items WHERE item_id IN "
                          f"({', '.join('?' * len(ids))})", ids).fetchone() == (0,)


def test_forget_something_unknown_says_so(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    result = workspace.run("forget", "urn:newswire:item:ffffffffffff")
    assert result.returncode == 1
    assert "No story or item matches" in result.stdout
    assert len(combined(workspace)) == 19


def test_forget_and_withdraw_on_both_stores(workspace: Workspace, store_url: str) -> None:
    """The same on SQLite and PostgreSQL: the store's part of unpublishing."""
    extra = workspace.root / "extra"
    extra.mkdir()
    (extra / "more.txt").write_text(seed_text([
        ("Frontex deploys officers to the external border", "Frontex",
         "Warsaw, 3 December 2024. Frontex deployed officers.")]), encoding="utf-8")
    header = f'[output]\ndir = "../output"\nbase_url = "http://feeds.example.test/"\n' \
             f'[store]\nurl = "{store_url}"\n'
    workspace.write_config(EXTRA_SOURCE, header=header)
    assert workspace.run("--once").returncode == 0
    story = story_with(workspace, MONTENEGRO)
    assert story is not None
    forgotten = workspace.run("forget", story["id"])
    assert forgotten.returncode == 0, forgotten.stderr
    workspace.write_config("", header=header)
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    assert story_with(workspace, MONTENEGRO) is None
    assert not any("Frontex" in item["title"] for item in combined(workspace))
    assert len(combined(workspace)) == 18


def test_forget_while_the_daemon_runs_is_published_by_its_next_run(
    workspace: Workspace,
) -> None:
    workspace.write_config('[schedule]\ninterval = "1s"\njitter = "0s"\n')
    daemon = DaemonProcess(workspace)
    try:
        daemon.wait_for_runs(1)
        story = story_with(workspace, MONTENEGRO)
        assert story is not None
        result = workspace.run("forget", story["id"])
        assert result.returncode == 0, result.stderr
        assert "its next run republishes" in result.stdout
        poll(lambda: True if story_with(workspace, MONTENEGRO) is None else None,
             timeout=20, what="the daemon to republish without the story")
        assert daemon.stop() == 0
    finally:
        daemon.close()
