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
