"""`aggregate explain`: why items were or were not merged, in words."""

from __future__ import annotations

import json

from conftest import Workspace


def test_explain_by_title_words_shows_members_reasons_and_near_misses(
    workspace: Workspace,
) -> None:
    assert workspace.run("--once").returncode == 0
    result = workspace.run("explain", "Montenegro")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "2 items, agencies: nato" in text
    assert "[leads] nato: NATO Secretary General discusses security in the Western Balkans" in text
    assert "[member] nato: NATO Secretary General meets the President of Montenegro" in text
    assert "it reports the event; another item is an advisory announcing it" in text
    assert "Why these items were merged:" in text
    assert "both name Jakov Milatovic" in text
    assert "both give the date 4 December 2024" in text
    # Each feature's part in the fitted score.
    assert "what made the score (log-odds): " in text
    assert "names +" in text and "advisory_same_agency +" in text
    assert "Close items kept apart:" in text
    assert "kept apart: titles name different countries" in text


def test_explain_by_story_id_or_its_prefix(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    items = json.loads((workspace.output / "combined.json").read_text())["items"]
    story = next(i for i in items if "Türkiye" in i["title"])
    full = workspace.run("explain", story["id"])
    prefix = workspace.run("explain", story["id"].removeprefix("urn:uuid:")[:8])
    assert full.returncode == prefix.returncode == 0
    assert full.stdout == prefix.stdout
    assert "Secretary General in Türkiye" in full.stdout
    assert "1 item, agencies: nato" in full.stdout


def test_explain_says_so_when_nothing_matches(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    result = workspace.run("explain", "no", "such", "words")
    assert result.returncode == 1
    assert "No story matches 'no such words'" in result.stdout
