"""`aggregate --once` end to end, as a subprocess on temp dirs, the way a user runs it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import feedparser
import pytest
from conftest import DATA, Workspace, seed_text
from filelock import FileLock

GOLDEN = DATA / "golden" / "seeds"
UPDATE_GOLDEN = os.environ.get("NEWSWIRE_UPDATE_GOLDEN") == "1"
FEED_FILES = ["combined.atom", "combined.rss", "nato.atom", "nato.rss", "europol.atom",
              "europol.rss", "eurojust.atom", "eurojust.rss", "interpol.atom", "interpol.rss",
              "jcs.atom", "jcs.rss"]


def normalized(data: bytes) -> str:
    """Output with its volatile fields (the generator's version) made constant."""
    text = data.decode("utf-8")
    return re.sub(r'(<generator[^>]*version=")[^"]*(")', r"\g<1>VERSION\g<2>", text)


def story_ids(ws: Workspace) -> dict[str, str]:
    feed = json.loads((ws.output / "combined.json").read_text())
    return {item["title"]: item["id"] for item in feed["items"]}


def test_bundled_seeds_publish_the_golden_files(workspace: Workspace) -> None:
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    files = workspace.output_files()
    json_files = {f"{slug}.json" for slug in ("combined", "nato", "europol", "eurojust",
                                                 "interpol", "jcs")}
    assert set(files) == {*FEED_FILES, *json_files, "feeds.opml", "index.html"}
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, path in files.items():
            (GOLDEN / name).write_text(normalized(path.read_bytes()), encoding="utf-8")
    for name, path in files.items():
        golden = GOLDEN / name
        assert golden.exists(), f"no golden file for {name}; run with NEWSWIRE_UPDATE_GOLDEN=1"
        assert normalized(path.read_bytes()) == golden.read_text(encoding="utf-8"), name


def test_summary_line_and_story_counts(workspace: Workspace) -> None:
    result = workspace.run("--once")
    assert result.returncode == 0
    assert re.search(r"^aggregate: 2 sources ok, 0 failed; 20 items \(20 new, 0 updated\); "
                     r"19 stories; 20 files written, 0 unchanged; \d+\.\d\ds$",
                     result.stderr, re.MULTILINE), result.stderr
    combined = json.loads((workspace.output / "combined.json").read_text())
    assert len(combined["items"]) == 19
    nato = feedparser.parse((workspace.output / "nato.atom").read_bytes())
    assert len(nato.entries) == 8


def test_published_feeds_parse_cleanly(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    for name in FEED_FILES:
        parsed = feedparser.parse((workspace.output / name).read_bytes())
        assert not parsed.bozo, (name, parsed.get("bozo_exception"))
        assert parsed.entries, name
        for entry in parsed.entries:
            assert entry.id.startswith("urn:uuid:") and entry.title and entry.link
            assert entry.get("published_parsed") or entry.get("updated_parsed")
    combined = json.loads((workspace.output / "combined.json").read_text())
    assert combined["version"] == "https://jsonfeed.org/version/1.1"
    for item in combined["items"]:
        extension = item["_aggregator"]
        assert extension["agencies"] and extension["members"]
        assert {"agency", "title", "guid", "url"} <= set(extension["members"][0])


def test_entries_are_newest_first_and_the_feed_date_is_the_newest_entry(
    workspace: Workspace,
) -> None:
    assert workspace.run("--once").returncode == 0
    parsed = feedparser.parse((workspace.output / "nato.atom").read_bytes())
    published = [e.published_parsed for e in parsed.entries]
    assert published == sorted(published, reverse=True)
    newest = max(e.updated_parsed for e in parsed.entries)
    assert parsed.feed.updated_parsed == newest


def test_rerun_writes_nothing_and_keeps_ids(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    files = workspace.output_files()
    before = {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in files.items()}
    ids = story_ids(workspace)
    rerun = workspace.run("--once", env={"AGGREGATOR_NOW": "2026-11-30T09:00:00Z"})
    assert rerun.returncode == 0
    assert "0 files written, 20 unchanged" in rerun.stderr
    after = {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in workspace.output_files().items()}
    assert after == before
    assert story_ids(workspace) == ids


def test_lost_state_gives_the_same_ids(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    ids = story_ids(workspace)
    workspace.state.unlink()
    assert workspace.run("--once").returncode == 0
    assert story_ids(workspace) == ids


def test_a_title_edit_keeps_the_story_id(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    ids = story_ids(workspace)
    seed = next(workspace.seeds.glob("003_*.txt"))
    old = "NATO and Tunisia strengthen their cooperation on defence education"
    new = "NATO and Tunisia deepen cooperation on defence education"
    seed.write_text(seed.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    result = workspace.run("--once")
    assert result.returncode == 0
    assert "(0 new, 1 updated)" in result.stderr
    edited = story_ids(workspace)
    assert edited[new] == ids[old]
    assert len(edited) == len(ids)


def test_a_broken_seed_file_fails_alone(workspace: Workspace) -> None:
    (workspace.seeds / "bad.txt").write_text("A stray preface line\n\nTitle\n\nSource: NATO\n\nB\n")
    result = workspace.run("--once")
    assert result.returncode == 1
    assert re.search(r"error: seeds/bad\.txt:1: text before the first item", result.stderr)
    assert "Traceback" not in result.stderr
    assert "2 sources ok, 1 failed" in result.stderr
    assert len(json.loads((workspace.output / "combined.json").read_text())["items"]) == 19


def test_binary_seed_file_is_reported_with_its_line(workspace: Workspace) -> None:
    (workspace.seeds / "blob.txt").write_bytes(b"Title\n\nSource: NATO\n\nok\n\x00\x01\x02")
    result = workspace.run("--once")
    assert result.returncode == 1
    assert "seeds/blob.txt:6: binary data" in result.stderr


def test_earlier_output_stays_when_every_source_fails_later(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    before = {n: p.read_bytes() for n, p in workspace.output_files().items()}
    for seed in workspace.seeds.glob("*.txt"):
        seed.write_bytes(b"\xff\xfe not utf-8")
    result = workspace.run("--once")
    assert result.returncode == 1
    assert "not UTF-8" in result.stderr
    assert {n: p.read_bytes() for n, p in workspace.output_files().items()} == before


def test_a_glob_matching_nothing_is_a_failed_source(workspace: Workspace) -> None:
    workspace.write_config('[[sources]]\ntype = "seedfile"\npath = "../missing/*.txt"\n')
    result = workspace.run("--once")
    assert result.returncode == 1
    assert "missing/*.txt: no seed files match" in result.stderr


@pytest.mark.parametrize(
    ("body", "key"),
    [("[output]\nmax_entries = -1\n", "output.max_entries"),
     ('[[sources]]\ntype = "feed"\nagency = "fbi"\nurl = "https://x.test/"\n', "sources[2].agency"),
     ("[dedup]\nwindow = 3\n", "dedup.window")],
)
def test_a_bad_config_exits_2_naming_the_key(workspace: Workspace, body: str, key: str) -> None:
    if body.startswith("[output]"):
        workspace.write_config("", header=body + '[store]\npath = "../state/a.db"\n')
    else:
        workspace.write_config(body)
    result = workspace.run("--once")
    assert result.returncode == 2
    assert f"aggregator.toml: {key}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert not workspace.output_files()


def test_missing_config_exits_2(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    result = ws.run("--once")
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_a_held_lock_exits_3(workspace: Workspace) -> None:
    workspace.output.mkdir(parents=True, exist_ok=True)
    with FileLock(workspace.output / ".aggregate.lock", timeout=0):
        result = workspace.run("--once")
    assert result.returncode == 3
    assert "another aggregate run holds this lock" in result.stderr


def test_unknown_agency_is_published_under_a_derived_feed(workspace: Workspace) -> None:
    (workspace.seeds / "extra.txt").write_text(seed_text([
        ("Border police seize counterfeit medicines", "Hellenic Police",
         "ATHENS, 2 December 2024 – Officers seized 3,400 boxes of counterfeit medicines."),
        ("Hellenic Police dismantle a car theft ring", "Hellenic Police",
         "THESSALONIKI, 3 December 2024 – Officers arrested six suspects."),
    ]), encoding="utf-8")
    result = workspace.run("--once")
    assert result.returncode == 0
    assert result.stderr.count("unknown agency") == 1
    assert ("seeds/extra.txt:1: unknown agency 'Hellenic Police' (and 1 more items in this "
            "source); publishing it as 'hellenic-police'") in result.stderr
    feed = feedparser.parse((workspace.output / "hellenic-police.atom").read_bytes())
    assert [e.title for e in feed.entries] == ["Hellenic Police dismantle a car theft ring",
                                               "Border police seize counterfeit medicines"]
    assert feed.feed.author == "Hellenic Police"


def test_markup_in_seed_text_is_escaped_everywhere(workspace: Workspace) -> None:
    (workspace.seeds / "hostile.txt").write_text(seed_text([
        ('<script>alert("t")</script> Title & more', "NATO",
         'Body <img src=x onerror="alert(1)"> <a href="javascript:alert(2)">x</a>\x07'),
    ]), encoding="utf-8")
    assert workspace.run("--once").returncode == 0
    for path in workspace.output_files().values():
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text and "<img" not in text and "\x07" not in text, path.name
        assert 'href="javascript:' not in text, path.name


def test_max_entries_limits_every_feed(workspace: Workspace) -> None:
    workspace.write_config("", header=(
        '[output]\ndir = "../output"\nmax_entries = 3\nbase_url = "http://x.test/"\n'
        '[store]\npath = "../state/a.db"\n'
    ))
    assert workspace.run("--once").returncode == 0
    assert len(feedparser.parse((workspace.output / "combined.atom").read_bytes()).entries) == 3
    assert len(feedparser.parse((workspace.output / "nato.rss").read_bytes()).entries) == 3
    assert len(json.loads((workspace.output / "combined.json").read_text())["items"]) == 3


def test_an_upgrade_of_the_renderer_republishes_though_no_story_changed(
    workspace: Workspace,
) -> None:
    assert workspace.run("--once").returncode == 0
    assert "publish skipped" in workspace.run("--once", "-v").stderr
    # What a run by an older version of the renderer would have left in the output dir.
    record = workspace.output / ".aggregate.published"
    recorded = json.loads(record.read_text())
    recorded["stamp"] = recorded["stamp"].rsplit(":", 1)[0] + ":0000000000000000"
    record.write_text(json.dumps(recorded))
    before = {n: p.read_bytes() for n, p in workspace.output_files().items()}
    rerun = workspace.run("--once", "-v")
    assert rerun.returncode == 0
    assert "publish skipped" not in rerun.stderr
    assert {n: p.read_bytes() for n, p in workspace.output_files().items()} == before
    assert "publish skipped" in workspace.run("--once", "-v").stderr


def test_items_a_killed_run_stored_but_never_placed_are_placed_by_the_next(
    workspace: Workspace,
) -> None:
    import sqlite3

    assert workspace.run("--once").returncode == 0
    ids = story_ids(workspace)
    # As a run killed between storing its items and writing their stories leaves it.
    with sqlite3.connect(workspace.state) as db:
        db.execute("UPDATE items SET story_id = NULL")
        db.execute("DELETE FROM stories")
        db.execute("DELETE FROM story_agencies")
        db.execute("DELETE FROM dedup_keys")
    result = workspace.run("--once")
    assert result.returncode == 0, result.stderr
    assert "19 stories" in result.stderr
    assert story_ids(workspace) == ids
