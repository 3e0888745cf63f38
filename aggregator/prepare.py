"""Prepare a source's items for the store: normalize them and analyse them for dedup.

Pure (data in, data out, `now` passed in) and CPU-bound, so a large run does it in worker
processes while the main process stores what is ready. An item's analysis does not depend
on its id, which the store assigns later: the features carry an empty id until then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aggregator.config import AgencyConfig
from aggregator.model import Item, RawItem, StoredItem
from aggregator.normalize import AgencyDirectory, normalize_all


@dataclass(frozen=True, slots=True)
class Prepared:
    """A source's normalized items, their dedup features (serialized for the store and as
    objects for this run's clustering), and the warnings about them."""

    items: tuple[Item, ...]
    features: tuple[object, ...]
    """`dedup.Features` per item, with an empty item id (typed loosely: dedup and numpy are
    imported only when a run has items to analyse)."""
    serialized: tuple[str, ...]
    warnings: tuple[str, ...]


def prepare(raws: Sequence[RawItem], agencies: Mapping[str, AgencyConfig],
            now: datetime) -> Prepared:
    """Normalize and analyse one source's items (first seen `now`, if they are new)."""
    from aggregator import dedup

    batch = normalize_all(raws, AgencyDirectory.from_config(agencies), now)
    provisional = [as_new(item, now) for item in batch.items]
    features = dedup.extract_many(provisional)
    return Prepared(
        items=batch.items,
        features=tuple(features),
        serialized=tuple(f.to_json() for f in features),
        warnings=batch.warnings,
    )


def as_new(item: Item, now: datetime) -> StoredItem:
    """The item as the store would hold it if it were new: first seen now, id to come."""
    return StoredItem(**{name: getattr(item, name) for name in item.__slots__},
                      item_id="", first_seen=now)
