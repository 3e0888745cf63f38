"""Prepare a source's items for the store: normalize them and analyse them for dedup.

Pure (data in, data out, `now` passed in) and CPU-bound, so a large run does it in worker
processes while the main process stores what is ready. An item's analysis does not depend
on its id, which the store assigns later: the features carry an empty id until then.

Entries the store holds already, unchanged (their `normalize.entry_key` is stored), are not
prepared again: they are kept, and the store's item stands for them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aggregator.config import AgencyConfig
from aggregator.model import Item, RawItem, StoredItem
from aggregator.normalize import AgencyDirectory, entry_key, normalize_all


@dataclass(frozen=True, slots=True)
class Kept:
    """An entry whose item the store holds already: where the source lists it now."""

    index: int
    """Its index among the source's entries."""
    key: str
    origin: str
    position: int


@dataclass(frozen=True, slots=True)
class Prepared:
    """A source's newly normalized items, their dedup features, their entries' keys and
    places, the entries kept as stored, and the warnings about them.

    What a worker sends back, so nothing in it twice: the features go as objects (this run
    clusters with them), and the main process serializes them for the store, while it
    would otherwise wait for the workers. 2,000 seed items: 6.1 MB pickled (with the
    serialized features too, 9.7 MB)."""

    items: tuple[Item, ...]
    features: tuple[object, ...]
    """`dedup.Features` per item, with an empty item id (typed loosely: dedup and numpy are
    imported only when a run has items to analyse)."""
    keys: tuple[str, ...]
    """Each item's entry key (`normalize.entry_key`)."""
    places: tuple[int, ...]
    """Each item's index among the source's entries."""
    kept: tuple[Kept, ...] = ()
    warnings: tuple[str, ...] = ()


def prepare(raws: Sequence[RawItem], agencies: Mapping[str, AgencyConfig],
            now: datetime, known: Collection[str] = ()) -> Prepared:
    """Normalize and analyse one source's entries (first seen `now`, if they are new),
    except those whose entry key is in `known` (the keys of the source's stored items)."""
    keys = [entry_key(raw) for raw in raws]
    kept: list[Kept] = []
    if known:
        taken: set[str] = set()
        for index, (raw, key) in enumerate(zip(raws, keys, strict=True)):
            # One entry per stored item: a second copy of an entry is prepared as usual.
            if key in known and key not in taken:
                taken.add(key)
                kept.append(Kept(index, key, raw.origin, raw.position))
    batch = normalize_all(raws, AgencyDirectory.from_config(agencies), now,
                          kept={k.index for k in kept})
    features: list[object] = []
    if batch.items:
        from aggregator import dedup

        features.extend(dedup.extract_many([as_new(item, now) for item in batch.items]))
    return Prepared(
        items=batch.items,
        features=tuple(features),
        keys=tuple(keys[place] for place in batch.places),
        places=batch.places,
        kept=tuple(kept),
        warnings=batch.warnings,
    )


def as_new(item: Item, now: datetime) -> StoredItem:
    """The item as the store would hold it if it were new: first seen now, id to come."""
    return StoredItem(**{name: getattr(item, name) for name in item.__slots__},
                      item_id="", first_seen=now)


@dataclass(frozen=True, slots=True)
class Preparer:
    """`prepare` for one run's agencies and time: picklable, so the worker that reads a
    unit prepares its entries too (`sources.Preparer`)."""

    agencies: Mapping[str, AgencyConfig]
    now: datetime

    def __call__(self, raws: Sequence[RawItem], known: Collection[str] = ()) -> Prepared:
        return prepare(raws, self.agencies, self.now, known)
