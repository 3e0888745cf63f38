"""Dedup (pure): the seeds' stories, exact identities, vetoes, no chaining, hostile input."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SEEDS

from aggregator import dedup
from aggregator.config import AgencyConfig, DedupConfig
from aggregator.dedup.blocking import Index
from aggregator.model import RawItem, StoredItem
from aggregator.normalize import AgencyDirectory, normalize
from aggregator.sources.seedfile import parse_seed_bytes

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONFIG = DedupConfig()
AGENCIES = AgencyDirectory.from_config({
    "nato": AgencyConfig("nato", "NATO"),
    "interpol": AgencyConfig("interpol", "INTERPOL", ("Interpol (news and events)",)),
    "jcs": AgencyConfig("jcs", "US Joint Chiefs of Staff", ("US Defense Joint Chiefs of Staff",)),
})


def stored(raw: RawItem, item_id: str, seen: datetime = NOW) -> StoredItem:
    item = normalize(raw, AGENCIES, seen).item
    assert item is not None
    return StoredItem(**{name: getattr(item, name) for name in item.__slots__},  # type: ignore[attr-defined]
                      item_id=item_id, first_seen=seen)


def make(item_id: str, title: str, text: str, *, agency: str = "nato", day: int | None = 4,
         guid: str | None = None, link: str | None = None) -> StoredItem:
    published = datetime(2024, 12, day, 12, tzinfo=UTC) if day is not None else None
    return stored(RawItem(source_id="t", origin=f"t:{item_id}", agency_label=agency, title=title,
                          content=text, guid=guid, link=link, published=published), item_id)


def seed_items() -> list[StoredItem]:
    items = []
    for path in sorted(SEEDS.glob("*.txt")):
        for raw in parse_seed_bytes(path.read_bytes(), path.name):
            items.append(stored(raw, f"{path.name[:3]}:{raw.position:02d}"))
    return items


def stories_of(items: list[StoredItem], config: DedupConfig = CONFIG) -> list[tuple[str, ...]]:
    clustering = dedup.cluster(dedup.extract_many(items), [], {}, config)
    return list(clustering.members.values())


def titles_together(stories: list[tuple[str, ...]], items: list[StoredItem], *words: str) -> bool:
    by_id = {i.item_id: i for i in items}
    wanted = [next(i.item_id for i in items if w in i.title) for w in words]
    return any(all(w in story for w in wanted) for story in stories) and all(
        by_id[w] for w in wanted)


def test_seeds_make_19_stories_and_8_for_nato() -> None:
    items = seed_items()
    stories = stories_of(items)
    by_id = {i.item_id: i for i in items}
    assert len(items) == 20
    assert len(stories) == 19
    assert sum(1 for s in stories if any(by_id[i].agency == "nato" for i in s)) == 8


def test_seed_montenegro_advisory_and_report_are_one_story_led_by_the_report() -> None:
    items = seed_items()
    stories = stories_of(items)
    by_id = {i.item_id: i for i in items}
    (merged,) = [s for s in stories if len(s) > 1]
    assert [by_id[i].title for i in merged] == [
        "NATO Secretary General discusses security in the Western Balkans with the President "
        "of Montenegro",
        "NATO Secretary General meets the President of Montenegro",
    ]


@pytest.mark.parametrize(
    "words",
    [("chart way forward", "discuss situation in Ukraine"),
     ("praises Greece", "Secretary General in Türkiye")],
)
def test_seed_near_misses_stay_apart(words: tuple[str, str]) -> None:
    items = seed_items()
    assert not titles_together(stories_of(items), items, *words)


def test_same_guid_or_link_is_one_item() -> None:
    a = make("a", "Title one", "Some text about one thing.", guid="urn:x:1")
    b = make("b", "Retitled", "Other words entirely now.", guid="urn:x:1", day=5)
    c = make("c", "Another", "Yet more words.", link="https://x.test/1")
    d = make("d", "Different", "Still more words.", link="https://x.test/1", day=6)
    fa, fb, fc, fd = dedup.extract_many([a, b, c, d])
    assert dedup.compare(fa, fb, CONFIG).exact
    assert dedup.compare(fc, fd, CONFIG).exact


def test_repost_and_title_edit_and_summary_prefix_are_exact() -> None:
    body = ("Police in twelve countries arrested 40 suspects in a coordinated action against a "
            "network that laundered the proceeds of cocaine trafficking through front companies "
            "and cryptocurrency exchanges across Europe and South America.")
    original = make("o", "Money laundering network taken down", body)
    repost = make("r", "Money laundering network taken down", body, day=5)
    edited = make("e", "Money-laundering network dismantled in 12 countries", body, day=5)
    summary = make("s", "Laundering network hit", body[:150] + "…", day=None)
    fo, fr, fe, fs = dedup.extract_many([original, repost, edited, summary])
    assert "re-post" in dedup.compare(fo, fr, CONFIG).reasons[0]
    assert "edited title" in dedup.compare(fo, fe, CONFIG).reasons[0]
    assert "summary" in dedup.compare(fs, fo, CONFIG).reasons[0]


def test_one_title_recurring_over_different_texts_is_not_one_story() -> None:
    week1 = make("w1", "Weekly press briefing", "The spokesperson described air strikes against "
                 "depots in Yemen and the arrival of bombers in the region.", day=5)
    week2 = make("w2", "Weekly press briefing", "Asked about long-range missiles used against "
                 "Russia, the spokesperson referred questions to Ukraine.", day=12)
    assert len(stories_of([week1, week2])) == 2


def test_no_chaining_through_a_weak_middle_item() -> None:
    # A and C each resemble B, but A and C conflict (different countries): C may join
    # B's story only if it agrees with A too.
    a = make("a", "NATO Secretary General meets the Prime Minister of Estonia",
             "On Wednesday 4 December 2024, Mark Rutte met the Prime Minister of Estonia "
             "Kristen Michal at NATO Headquarters in Brussels to discuss Baltic security.")
    b = make("b", "NATO Secretary General meets Baltic leaders",
             "On Wednesday 4 December 2024, Mark Rutte met Baltic leaders at NATO "
             "Headquarters in Brussels to discuss Baltic security and air defence.")
    c = make("c", "NATO Secretary General meets the Prime Minister of Latvia",
             "On Wednesday 4 December 2024, Mark Rutte met the Prime Minister of Latvia "
             "Evika Siliņa at NATO Headquarters in Brussels to discuss Baltic security.")
    fa, _, fc = dedup.extract_many([a, b, c])
    assert dedup.compare(fa, fc, CONFIG).veto is not None
    stories = stories_of([a, b, c])
    assert not any({"a", "c"} <= set(s) for s in stories)


def test_canonical_is_the_full_text_over_a_summary_and_report_over_advisory() -> None:
    full = make("full", "Firearms trafficker arrested", "The man was arrested in Poland while "
                "transporting weapon kits bought in Austria. A search of his home uncovered "
                "dozens of illegally held weapons including pistols and rifles, and more than "
                "twenty thousand rounds of ammunition were seized by the investigators.")
    summary = make("sum", "Firearms trafficker arrested in cross-border operation",
                   full.text[:160] + "…", day=None)
    (story,) = stories_of([summary, full])
    assert story[0] == "full"


def test_story_id_is_stable_when_members_join() -> None:
    items = seed_items()
    features = {f.item_id: f for f in dedup.extract_many(items)}
    advisory = next(i.item_id for i in items if i.title.startswith("NATO Secretary General meets"))
    report = next(i.item_id for i in items if "Western Balkans" in i.title)
    first = dedup.cluster([features[advisory]], [], {}, CONFIG)
    (story_id,) = first.members
    second = dedup.cluster([features[report]], [features[advisory]], first.members, CONFIG)
    assert list(second.members) == [story_id]
    assert second.members[story_id] == (report, advisory)
    assert second.notes[0].merged and second.notes[0].item_id == report


def test_features_survive_the_store_round_trip() -> None:
    for f in dedup.extract_many(seed_items()):
        assert dedup.Features.from_json(f.to_json(), f.item_id) == f


# -- hostile and odd input ---------------------------------------------------------------


def odd_items() -> list[StoredItem]:
    huge = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40000)[:2_000_000]
    return [
        make("empty-body", "Statement", "", day=1),
        make("empty-title", "", "A text with no title at all, about a meeting in Rome.", day=2),
        make("one-word", "Update", "Update", day=3),
        make("one-word-2", "Update", "Update", day=3),
        make("huge", "A very long item", huge, day=4),
        make("huge-2", "Another very long item", "Different start. " + huge, day=4),
        make("caps", "NATO SECRETARY GENERAL MEETS PRESIDENT OF ESTONIA",
             "ON WEDNESDAY THE SECRETARY GENERAL MET THE PRESIDENT OF ESTONIA.", day=5),
        make("caps-2", "EUROPOL SUPPORTS ACTION AGAINST FRAUD IN SPAIN",
             "POLICE IN SPAIN ARRESTED TWELVE SUSPECTS.", day=5),
        make("punct", "!!! ??? ...", "... --- !!!", day=6),
        make("punct-2", "*** ### ***", "??? !!! ???", day=6),
        make("cyrillic", "Генеральный секретарь НАТО встретился с президентом",
             "В среду генеральный секретарь НАТО встретился с президентом Черногории.", day=7),
        make("chinese", "国际刑警组织秘书长访问巴西", "国际刑警组织秘书长本周访问了巴西利亚。",
             day=7),
        make("arabic", "الأمين العام لحلف الناتو يلتقي رئيس الوزراء",
             "التقى الأمين العام لحلف شمال الأطلسي رئيس الوزراء في بروكسل.", day=7),
    ]


def test_odd_items_neither_crash_nor_merge_into_one_story() -> None:
    items = odd_items()
    stories = stories_of(items)
    assert sum(len(s) for s in stories) == len(items)
    assert len(stories) >= len(items) - 2
    assert max(len(s) for s in stories) <= 2


def test_identical_one_word_items_on_one_day_are_reposts_but_different_days_are_not() -> None:
    same_day = stories_of([make("u1", "Update", "Update", day=3), make("u2", "Update", "Update",
                                                                       day=3)])
    other_day = stories_of([make("u1", "Update", "Update", day=3), make("u2", "Update", "Update",
                                                                        day=9)])
    assert len(same_day) == 1 and len(other_day) == 2


def test_two_megabyte_bodies_cost_no_more_than_their_lead() -> None:
    (big,) = [i for i in odd_items() if i.item_id == "huge"]
    features = dedup.extract_features(big)
    assert features.length == 2_000_000
    assert len(features.lead_words) // 4 < 200  # packed word hashes of the opening only


def test_undated_items_are_compared_without_a_window() -> None:
    dated = make("d", "Operation Sentinel dismantles cocaine network in Spain",
                 "Police in Spain and Portugal arrested 37 suspects and seized 4.2 tonnes of "
                 "cocaine in Operation Sentinel, supported by Europol.", day=1)
    undated = replace(make("u", "Operation Sentinel: 37 arrests in Spain and Portugal",
                           "Operation Sentinel led to 37 arrests in Spain and Portugal and the "
                           "seizure of 4.2 tonnes of cocaine.", day=None),
                      first_seen=NOW + timedelta(days=400))
    assert len(stories_of([dated, undated])) == 1


def test_stored_candidates_need_a_rare_shared_key_not_just_any_key() -> None:
    report = make("new", "Secretary General meets President Milatović of Montenegro",
                  "On Wednesday 4 December 2024, Mark Rutte met Jakov Milatović in Brussels.")
    advisory = make("adv", "NATO Secretary General to meet the President of Montenegro",
                    "On Wednesday 4 December 2024, Mark Rutte will meet Jakov Milatović.")
    unrelated = [make(f"u{n}", f"Ministers discuss Ukraine, meeting {n}",
                      f"Ministers met in Brussels on day {n} to discuss air defence.", day=3)
                 for n in range(30)]
    features = dedup.extract_many([report, advisory, *unrelated])
    new, stored = features[0], features[1:]
    holders: dict[str, dict[str, int | None]] = {}
    for f in stored:
        for key in dedup.blocking_keys(f):
            holders.setdefault(key, {})[f.item_id] = f.day
    spreads = {key: dedup.Spread.of(Counter(held.values())) for key, held in holders.items()}
    chosen = dedup.stored_candidates([new], holders, spreads, CONFIG)
    assert "adv" in chosen
    assert len(chosen) < 5, chosen  # "Brussels" alone, shared by 30 items, picks none


def test_reports_of_one_country_a_day_apart_are_compared_though_they_share_no_rare_word() -> None:
    # One case, two angles: the arrests and the searches. They share a country and the
    # days, not a name. Twenty other items name the country later in the fortnight, so the
    # country alone weighs little; within a few days, it still finds the other report.
    arrests = make("arrests", "Eleven arrested in coordinated raids",
                   "Police officers in Lithuania arrested eleven suspects on Tuesday.",
                   agency="europol", day=3)
    centres = make("centres", "Four offices searched after investigation",
                   "Prosecutors in Lithuania searched four offices and froze bank accounts.",
                   agency="eurojust", day=4)
    others = [make(f"o{n}", f"Ministers discuss defence, meeting {n}",
                   "Ministers met in Lithuania to discuss air defence.", day=8 + n % 10)
              for n in range(20)]
    features = dedup.extract_many([arrests, *others, centres])
    index = Index(window=CONFIG.window_days, key_cap=CONFIG.key_cap, stored_counts={})
    for f in features[:-1]:
        index.add(f, f.item_id)
    last = features[-1]
    keys = dedup.blocking_keys(last)
    index.focus(last, keys)
    found = [index.features[slot].item_id
             for slot in index.candidates(last, keys, CONFIG.candidate_limit)]
    assert found == ["arrests"]


def test_a_spread_counts_holders_within_a_window_and_all_of_them_for_an_undated_item() -> None:
    spread = dedup.Spread.of({10: 2, 12: 1, 30: 4, None: 1})
    assert spread.near((10, 12)) == 4 and spread.near((13, 29)) == 1
    assert spread.near(None) == 8
    # Counted only over the dated items' days, and in all for an undated one.
    assert dedup.Spread.of({10: 2}, everywhere=9).near(None) == 9
    assert dedup.Spread.of({}, everywhere=9).near((0, 100)) == 0
