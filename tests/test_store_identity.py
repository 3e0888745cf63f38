"""Item ids stay unique when many sources carry the same item (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator.config import AgencyConfig
from aggregator.model import RawItem
from aggregator.normalize import AgencyDirectory, normalize
from aggregator.store import open_store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_the_same_item_from_many_sources_gets_an_id_in_each(store_url: str) -> None:
    """No guid, no link: the id comes from the content, so the sources' ids collide; the
    third and later sources must skip every id taken before (this once crashed a run)."""
    directory = AgencyDirectory.from_config({"nato": AgencyConfig("nato", "NATO")})
    store = open_store(store_url)
    try:
        ids = []
        for number in range(5):
            raw = RawItem(source_id=f"feed:http://127.0.0.1/{number}", origin="x",
                          agency_label="nato", title="don\u2019t", content="don\u2019t")
            item = normalize(raw, directory, NOW).item
            assert item is not None
            result = store.reconcile(raw.source_id, [item], NOW)
            assert len(result.new) == 1
            ids.extend(result.new)
        assert len(set(ids)) == 5
        # Read again, each source still finds its own item: nothing new, nothing changed.
        again = store.reconcile("feed:http://127.0.0.1/3", [item], NOW)
        assert (again.new, again.changed, again.unchanged) == ((), (), 1)
    finally:
        store.close()
