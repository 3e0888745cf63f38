"""Item ids stay unique when many sources carry the same item (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator import identity
from aggregator.config import AgencyConfig
from aggregator.model import RawItem
from aggregator.normalize import AgencyDirectory, normalize
from aggregator.store import open_store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_the_same_item_from_many_sources_is_stored_once_under_one_id(store_url: str) -> None:
    """No guid, no link: the id comes from the content, so every source computes the same
    one; the first source stores the item and for the others it is already stored (an id
    is never tried again under another number, which once let two nodes store one seed
    file twice)."""
    directory = AgencyDirectory.from_config({"nato": AgencyConfig("nato", "NATO")})
    store = open_store(store_url)
    try:
        news = []
        for number in range(5):
            raw = RawItem(source_id=f"feed:http://127.0.0.1/{number}", origin="x",
                          agency_label="nato", title="don\u2019t", content="don\u2019t")
            item = normalize(raw, directory, NOW).item
            assert item is not None
            news.append(store.reconcile(raw.source_id, [item], NOW).new)
        assert len(news[0]) == 1
        assert news[1:] == [(), (), (), ()]
        assert store.counts()[0] == 1
        assert news[0][0] == identity.item_id(item)
        # Read again, nothing is new or changed for any source.
        again = store.reconcile("feed:http://127.0.0.1/3", [item], NOW)
        assert (again.new, again.changed) == ((), ())
    finally:
        store.close()


def test_leases_share_sources_and_expire(store_url: str) -> None:
    """Claims take only due sources nobody holds, at most `limit`; a lease that expired
    (its node died) is claimable again; a release frees at once; states come with it."""
    from datetime import timedelta

    from aggregator.store import SourceState

    store = open_store(store_url)
    try:
        ids = [f"feed:http://127.0.0.1/{n}" for n in range(5)]
        store.add_sources(ids)
        store.add_sources(ids)  # known ones are left alone
        store.save_source_state(SourceState(ids[4], "feed", etag='"x"'))

        def due(source_id: str, state: SourceState | None) -> bool:
            return source_id != ids[3]  # one source is not due

        first = store.claim_sources(ids, due, holder="a", at=NOW, lease=60, limit=2)
        assert sorted(first) == ids[:2]
        second = store.claim_sources(ids, due, holder="b", at=NOW, lease=60, limit=10)
        assert sorted(second) == [ids[2], ids[4]]
        assert second[ids[4]] == SourceState(ids[4], "feed", etag='"x"')
        assert store.claim_sources(ids, due, holder="c", at=NOW, lease=60, limit=10) == {}
        assert {s: h for s, (h, _) in store.leases().items()} == {
            ids[0]: "a", ids[1]: "a", ids[2]: "b", ids[4]: "b"}
        store.release_sources([ids[2]], "a")  # not a's: nothing happens
        store.release_sources([ids[2]], "b")
        assert list(store.claim_sources(ids, due, holder="c", at=NOW, lease=60,
                                        limit=10)) == [ids[2]]
        later = NOW + timedelta(seconds=61)  # every lease expired
        taken = store.claim_sources(ids, due, holder="d", at=later, lease=60, limit=10)
        assert sorted(taken) == [ids[0], ids[1], ids[2], ids[4]]
        assert {h for h, _ in store.leases().values()} == {"d"}
    finally:
        store.close()
