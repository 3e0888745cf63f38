"""Full feed history (RFC 5005): monthly archives, their links, their stability, goldens."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from conftest import DATA, Workspace
from pytest_httpserver import HTTPServer
from test_cli_once import UPDATE_GOLDEN, normalized
from test_feeds_e2e import FETCH_TABLE, PAYLOADS, feed_sources
from unsafe_markup import unsafe_markup

from aggregator.history import Dated, split_history

BASE = "http://feeds.example.test/"
ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
GOLDEN = DATA / "golden" / "history"
HISTORY_HEADER = f"""
[output]
dir = "../output"
base_url = "{BASE}"
title = "Test Newswire"
max_entries = 3

[store]
path = "../state/aggregator.db"

[countries]
min_stories = 2

[[topics]]
slug = "nato-diplomacy"
title = "NATO diplomacy"
query = 'agency:nato any(minister* "secretary general" president)'
"""


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_split_history_keeps_the_newest_and_files_the_rest_by_month() -> None:
    stories = [Dated("a", day("2024-12-04")), Dated("b", day("2024-12-01")),
               Dated("c", day("2024-11-30")), Dated("d", day("2024-11-02")),
               Dated("e", day("2024-09-15"))]
    history = split_history("combined", stories, 2)
    assert history.current == ("a", "b")
    assert [(p.stem, p.story_ids) for p in history.archives] == [
        ("archive/combined-2024-11", ("c", "d")),
        ("archive/combined-2024-09", ("e",)),  # October had nothing: no archive, skipped
    ]
    newest, oldest = history.archives
    assert (newest.next_archive, newest.prev_archive) == (None, oldest.stem)
    assert (oldest.next_archive, oldest.prev_archive) == (newest.stem, None)
    assert history.newest_archive == newest.stem
    assert split_history("x", stories, 10).archives == ()


def history_workspace(workspace: Workspace) -> Workspace:
    workspace.write_config("", header=HISTORY_HEADER)
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    return workspace


def links(root: ET.Element) -> dict[str, str]:
    channel = root.find("channel")
    parent = channel if channel is not None else root
    found = {}
    for link in [*parent.findall(f"{ATOM}link"), *parent.findall("link")]:
        if link.get("rel"):
            found[link.get("rel", "")] = link.get("href", "")
    return found


def entry_ids(root: ET.Element) -> list[str]:
    if root.tag == f"{ATOM}feed":
        return [e.findtext(f"{ATOM}id", "") for e in root.findall(f"{ATOM}entry")]
    return [i.findtext("guid", "") for i in root.iter("item")]


def walk(output: Path, name: str) -> tuple[list[str], list[str]]:
    """Follow prev-archive from a subscription document as a reader would: the entry ids met
    (in order, duplicates kept) and the documents visited."""
    seen: list[str] = []
    visited: list[str] = []
    url: str | None = BASE + name
    while url is not None:
        assert url.startswith(BASE), url
        relative = url[len(BASE):]
        assert relative not in visited, f"a prev-archive loop at {relative}"
        visited.append(relative)
        root = ET.parse(output / relative).getroot()
        is_archive = (root.find(f"{FH}archive") is not None
                      or root.find(f"channel/{FH}archive") is not None)
        assert is_archive == (len(visited) > 1), relative
        found = links(root)
        if is_archive:
            assert found["current"] == BASE + name, relative
        seen.extend(entry_ids(root))
        url = found.get("prev-archive")
    return seen, visited


def test_a_reader_following_prev_archive_meets_every_story_exactly_once(
    workspace: Workspace, tmp_path: Path,
) -> None:
    history_workspace(workspace)
    # The same seeds with room for everything: what each feed holds in all.
    whole = Workspace(tmp_path / "whole")
    whole.copy_bundled_seeds()
    whole.write_config("", header=HISTORY_HEADER.replace("max_entries = 3",
                                                         "max_entries = 1000"))
    assert whole.run("--once").returncode == 0
    subscriptions = [n for n in workspace.output_files()
                     if n.endswith((".atom", ".rss"))]
    assert {"combined.atom", "nato.rss", "topic-nato-diplomacy.atom",
            "country-ua.atom"} <= set(subscriptions)
    archived_feeds = 0
    for name in subscriptions:
        seen, visited = walk(workspace.output, name)
        duplicates = [i for i, n in Counter(seen).items() if n > 1]
        assert not duplicates, (name, duplicates)
        expected = entry_ids(ET.parse(whole.output / name).getroot())
        assert sorted(seen) == sorted(expected), name
        assert len(seen) == len(expected)
        archived_feeds += len(visited) > 1
        # next-archive leads back the same way, newest archive last.
        for older, newer in zip(visited[2:], visited[1:-1], strict=True):
            root = ET.parse(workspace.output / older).getroot()
            assert links(root)["next-archive"] == BASE + newer
    assert archived_feeds >= 4


def test_archives_are_published_for_every_kind_of_feed_and_the_page(
    workspace: Workspace,
) -> None:
    history_workspace(workspace)
    archive = sorted(p.name for p in (workspace.output / "archive").iterdir())
    assert "combined-2024-11.atom" in archive and "combined-2024-11.rss" in archive
    assert "combined-2024-11.html" in archive and "nato-2024-11.atom" in archive
    assert any(n.startswith("topic-nato-diplomacy-") for n in archive)
    assert not any(n.endswith(".json") for n in archive)
    page = (workspace.output / "index.html").read_text()
    assert f'href="{BASE}archive/combined-2026-11.html"' in page  # "Older" from the front page
    older = (workspace.output / "archive" / "combined-2024-12.html").read_text()
    assert "Archive of December 2024" in older and "<script" not in older
    assert f'href="{BASE}archive/combined-2024-11.html"' in older
    assert f'href="{BASE}archive/combined-2026-11.html"' in older


def snapshot(output: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(output).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_an_unchanged_rerun_rewrites_no_file_archives_included(workspace: Workspace) -> None:
    history_workspace(workspace)
    before = snapshot(workspace.output)
    assert any(name.startswith("archive/") for name in before)
    rerun = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"})
    assert rerun.returncode == 0 and "0 files written" in rerun.stderr, rerun.stderr
    assert snapshot(workspace.output) == before


def test_a_new_story_leaves_the_archives_of_finished_months_alone(
    workspace: Workspace,
) -> None:
    history_workspace(workspace)
    before = snapshot(workspace.output)
    (workspace.seeds / "new.txt").write_text(
        "Europol supports a new operation\n\nSource: Europol\n\nA fresh text about an "
        "operation against counterfeit medicine, seen for the first time.\n",
        encoding="utf-8")
    result = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"})
    assert result.returncode == 0, result.stderr
    after = snapshot(workspace.output)
    rewritten = {n for n in after if n in before and after[n] != before[n]}
    assert "combined.atom" in rewritten
    # The story pushed one out of the subscription documents into November 2026's archive;
    # 2024's archives hold stories that did not change, so they are left as they were.
    assert "archive/combined-2026-11.atom" in rewritten
    assert not {n for n in rewritten if "-2024-" in n}, rewritten


def test_an_edited_story_rewrites_the_archive_that_holds_it(workspace: Workspace) -> None:
    history_workspace(workspace)
    before = snapshot(workspace.output)
    seed = next(p for p in workspace.seeds.glob("*.txt")
                if "NATO and Tunisia strengthen" in p.read_text(encoding="utf-8"))
    seed.write_text(seed.read_text(encoding="utf-8").replace(
        "NATO and Tunisia strengthen their cooperation on defence education",
        "NATO and Tunisia deepen their cooperation on defence education"), encoding="utf-8")
    result = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"})
    assert result.returncode == 0, result.stderr
    after = snapshot(workspace.output)
    rewritten = {n for n in after if after[n] != before.get(n)}
    assert "archive/combined-2024-11.atom" in rewritten
    assert "archive/combined-2024-12.atom" not in rewritten
    feed = feedparser.parse(after["archive/combined-2024-11.atom"][1])
    titles = [e.title for e in feed.entries]
    assert "NATO and Tunisia deepen their cooperation on defence education" in titles


def test_history_outputs_match_the_golden_files(workspace: Workspace) -> None:
    history_workspace(workspace)
    files = {p.relative_to(workspace.output).as_posix(): p
             for p in sorted(workspace.output.rglob("*"))
             if p.is_file() and not p.name.startswith(".")}
    if UPDATE_GOLDEN:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for name, path in files.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(normalized(path.read_bytes()), encoding="utf-8")
    golden = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert set(files) == golden
    for name, path in files.items():
        assert normalized(path.read_bytes()) == (GOLDEN / name).read_text(encoding="utf-8"), name


def test_newsboat_reads_topic_country_and_archive_feeds(
    workspace: Workspace, tmp_path: Path,
) -> None:
    newsboat = shutil.which("newsboat")
    if newsboat is None:
        pytest.fail("this test needs newsboat (apt-get install newsboat; .ci/run installs it)")
    history_workspace(workspace)
    names = ["topic-nato-diplomacy.atom", "topic-nato-diplomacy.rss", "country-ua.atom",
             "country-nl.rss", "archive/combined-2024-11.atom", "archive/nato-2024-11.rss"]
    for name in names:
        # One reader per feed: newsboat shows an id once over all feeds, and a country
        # feed's entries share their ids with the combined feed's on purpose.
        home = tmp_path / name.replace("/", "_")
        home.mkdir()
        (home / "urls").write_text(f"file://{workspace.output / name}\n")
        result = subprocess.run(
            [newsboat, "-u", str(home / "urls"), "-c", str(home / "cache.db"),
             "-x", "reload", "print-unread"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "HOME": str(home)},
        )
        assert result.returncode == 0, (name, result.stderr)
        expected = len(entry_ids(ET.parse(workspace.output / name).getroot()))
        assert expected > 0, name
        assert f"{expected} unread articles" in result.stdout, (name, result.stdout)


def test_a_run_renders_only_the_archives_whose_stories_changed(workspace: Workspace) -> None:
    history_workspace(workspace)
    old_month = workspace.output / "archive" / "combined-2024-11.atom"
    marked = old_month.read_bytes() + b"<!-- not rendered again -->\n"
    old_month.write_bytes(marked)
    missing = workspace.output / "archive" / "nato-2024-11.rss"
    missing.unlink()
    (workspace.seeds / "new.txt").write_text(
        "Eurojust supports a new case\n\nSource: Eurojust\n\nA fresh text about a case "
        "against counterfeit medicine, seen for the first time.\n", encoding="utf-8")
    result = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"})
    assert result.returncode == 0, result.stderr
    # Its digest is the recorded one: neither rendered nor written (hence still marked) ...
    assert old_month.read_bytes() == marked
    # ... while an archive whose file went missing is rendered and written again.
    assert missing.is_file()
    assert b"<fh:archive/>" in missing.read_bytes()


def test_a_run_renders_only_the_subscription_documents_whose_stories_changed(
    workspace: Workspace,
) -> None:
    history_workspace(workspace)
    untouched = workspace.output / "jcs.atom"
    marked = untouched.read_bytes() + b"<!-- not rendered again -->\n"
    untouched.write_bytes(marked)
    (workspace.seeds / "new.txt").write_text(
        "Eurojust supports a new case\n\nSource: Eurojust\n\nA fresh text about a case "
        "against counterfeit medicine, seen for the first time.\n", encoding="utf-8")
    result = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"})
    assert result.returncode == 0, result.stderr
    assert untouched.read_bytes() == marked  # JCS's stories did not change
    eurojust = feedparser.parse((workspace.output / "eurojust.atom").read_bytes())
    assert eurojust.entries[0].title == "Eurojust supports a new case"
    assert "Eurojust supports a new case" in (workspace.output / "index.html").read_text()


def test_publish_names_every_file_it_wrote_or_kept(workspace: Workspace) -> None:
    import json

    def recorded() -> set[str]:
        # The output directory's own record of its publish (not the store's: nodes sharing
        # a store each publish their own directory).
        record = workspace.output / ".aggregate.published"
        return set(json.loads(record.read_text(encoding="utf-8"))["files"])

    history_workspace(workspace)
    on_disk = set(snapshot(workspace.output))
    assert recorded() == on_disk
    # A run that keeps most documents as they were still names them all.
    (workspace.seeds / "new.txt").write_text(
        "Eurojust supports a new case\n\nSource: Eurojust\n\nA fresh text about a case "
        "against counterfeit medicine, seen for the first time.\n", encoding="utf-8")
    assert workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"}
                         ).returncode == 0
    assert recorded() == set(snapshot(workspace.output))


def test_every_entry_without_a_source_link_links_to_the_page_that_shows_it(
    workspace: Workspace,
) -> None:
    history_workspace(workspace)
    checked = 0
    for path in sorted(workspace.output.rglob("*.atom")):
        for entry in feedparser.parse(path.read_bytes()).entries:
            page, _, anchor = entry.link.partition("#")
            if not anchor:
                continue
            assert page.startswith(BASE), entry.link
            shown = (workspace.output / page[len(BASE):]).read_text(encoding="utf-8")
            assert f'id="{anchor}"' in shown, (path.name, entry.link)
            checked += 1
    assert checked > 40


def test_hostile_feeds_leak_nothing_into_archives_topics_or_countries(
    workspace: Workspace, loopback: HTTPServer,
) -> None:
    for path, body in PAYLOADS.items():
        loopback.expect_request(path).respond_with_data(body, content_type="application/xml")
    header = HISTORY_HEADER.replace("max_entries = 3", "max_entries = 1").replace(
        "min_stories = 2", "min_stories = 1")
    workspace.write_config(
        FETCH_TABLE + feed_sources([loopback.url_for(p) for p in PAYLOADS])
        + "\n[[topics]]\nslug = 'all'\ntitle = 'All'\nquery = 'not agency:none'\n",
        header=header)
    result = workspace.run("--once")
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 1), result.stderr
    assert (workspace.output / "archive").is_dir()
    assert unsafe_markup(workspace.output) == []
