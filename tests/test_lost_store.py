"""Ids that survive a lost store: what README promises, on real runs, and the pure rule."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from itertools import permutations

from conftest import Workspace
from pytest_httpserver import HTTPServer
from test_feeds_e2e import Entry, combined, feed_sources, rss

from aggregator import identity

TITLE = "Allied engineers rebuild the Sava river bridge near Brcko"
HTML = ("<p>Engineers from six allied nations finished a temporary bridge over the Sava "
        "near Brcko on Monday, reopening the crossing for aid convoys.</p>")
EARLY = datetime(2024, 12, 2, 10, 0, tzinfo=UTC)
LATE = datetime(2024, 12, 2, 14, 0, tzinfo=UTC)


def _hex_id(guid: str) -> str:
    # How the store names a feed item with a guid (identity.item_id), for choosing guids.
    return hashlib.blake2b(f"nato\x1f{guid}".encode(), digest_size=12).hexdigest()


def _later_guid_with_smaller_id(first_guid: str) -> str:
    """A guid whose item id sorts before `first_guid`'s: the order the old rule (founder =
    the first placed, by day and then item id) got wrong."""
    for number in range(1000):
        guid = f"bridge-live-{number}"
        if _hex_id(guid) < _hex_id(first_guid):
            return guid
    raise AssertionError("no such guid")


def _story_ids(workspace: Workspace) -> dict[str, str]:
    """Each combined story's id, by the sorted guids of its members."""
    return {"|".join(sorted(str(m["guid"]) for m in story["_aggregator"]["members"])):
            story["id"] for story in combined(workspace)}


def test_a_story_keeps_its_id_after_a_lost_store_though_a_member_arrived_later(
    workspace: Workspace, loopback: HTTPServer
) -> None:
    """The issue's case: a story whose second report arrived a run after its first. A cold
    run on an empty store sees both at once and must still give the story the same id, and
    every seed story too."""
    first_guid = "bridge-report"
    later_guid = _later_guid_with_smaller_id(first_guid)
    loopback.expect_request("/first").respond_with_data(rss(
        [Entry(TITLE, guid=first_guid, link="https://nato.test/a", html=HTML, date=EARLY)]))
    loopback.expect_request("/later").respond_with_data(rss(
        [Entry(TITLE, guid=later_guid, link="https://nato.test/b", html=HTML, date=LATE)]))
    first, later = loopback.url_for("/first"), loopback.url_for("/later")
    workspace.write_config(feed_sources([first]) + feed_sources([later], extra="enabled = false\n"))
    assert workspace.run("--once").returncode == 0
    workspace.write_config(feed_sources([first, later]))
    assert workspace.run("--once").returncode == 0
    before = _story_ids(workspace)
    key = "|".join(sorted([first_guid, later_guid]))
    assert key in before  # one story of the two reports
    shutil.rmtree(workspace.state.parent)
    shutil.rmtree(workspace.output)
    assert workspace.run("--once").returncode == 0
    assert _story_ids(workspace) == before


def test_the_story_id_rule_ignores_the_order_members_come_in() -> None:
    members = [identity.MemberDate("c3", EARLY + timedelta(hours=1)),
               identity.MemberDate("b2", EARLY), identity.MemberDate("a1", None),
               identity.MemberDate("d4", EARLY)]
    founders = {identity.founding_member(order) for order in permutations(members)}
    # The earliest own date; a tie goes to the smaller id; undated members come last.
    assert founders == {"b2"}
    assert identity.founding_member([identity.MemberDate("z", None),
                                     identity.MemberDate("y", None)]) == "y"


def test_a_stored_story_keeps_its_id_and_a_new_one_gets_the_rule_s() -> None:
    dates = {"old": LATE, "new": EARLY, "x": EARLY, "y": LATE}
    settled = identity.settle_story_ids(
        {"published-id": ("old", "new"), "placeholder": ("y", "x")},
        known={"published-id"}, own_dates=dates)
    assert settled == {"published-id": ("old", "new"),
                       identity.story_id_for("x"): ("y", "x")}


def test_item_ids_are_pure_and_tell_reposts_apart() -> None:
    from aggregator.config import AgencyConfig
    from aggregator.model import Item, RawItem
    from aggregator.normalize import AgencyDirectory, normalize

    directory = AgencyDirectory.from_config({"nato": AgencyConfig("nato", "NATO")})

    def item(title: str) -> Item:
        raw = RawItem(source_id="seedfile:a.txt", origin="a", agency_label="nato",
                      title=title, content="Same body.")
        normalized = normalize(raw, directory, EARLY).item
        assert normalized is not None
        return normalized

    found = [item("One"), item("Two"), item("One")]
    ids = identity.item_ids(found)
    assert ids == identity.item_ids(found)  # pure
    assert ids[0] != ids[2]  # a re-post is a second item
    assert ids[0] == identity.item_id(found[0]) and ids[2] == identity.item_id(found[2], 1)
    # An id kept by an edited item is skipped, not reused.
    assert identity.item_ids(found, reserved={ids[0]})[0] == ids[2]
