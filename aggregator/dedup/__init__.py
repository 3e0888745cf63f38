"""Group items that report the same event into stories (pure: data in, data out).

The stages, one module each:

* `features`: what one item says, read once from its title and lead: words, names,
  countries and cities, figures and counts, amounts, kinds of crime and event (the data file
  `vocabulary.toml`), operations, event dates, a MinHash of its wording;
* `compare`: exact identity, the evidence two items share, a score from the fitted
  `scorer` (a logistic model, `scorer.json`), hard vetoes (a conflict of date, country,
  person, phase or kind of event), and the reasons in words;
* `blocking`: keys that find candidates, one ranking for memory and for the store, and
  word rarity (`rarity`: in the local window and in the language);
* `cluster`: placing items into stories without chaining.
"""

from aggregator.dedup.blocking import (
    BLOCKING_VERSION,
    Spread,
    best_candidates,
    blocking_keys,
    index_rows,
    is_strong_key,
    keys_for,
    keys_to_fetch,
    stored_candidates,
)
from aggregator.dedup.cluster import (
    Clustering,
    cluster,
    joins,
    processing_order,
    rerank,
    richness,
)
from aggregator.dedup.compare import (
    UNIFORM,
    Comparison,
    Evidence,
    Weighting,
    compare,
    conflict,
    evidence,
    exact_identity,
)
from aggregator.dedup.features import (
    FEATURES_VERSION,
    Features,
    extract_features,
    extract_many,
    settled,
)
from aggregator.identity import STORY_NAMESPACE, story_id_for

__all__ = [
    "BLOCKING_VERSION",
    "FEATURES_VERSION",
    "STORY_NAMESPACE",
    "UNIFORM",
    "Clustering",
    "Comparison",
    "Evidence",
    "Features",
    "Spread",
    "Weighting",
    "best_candidates",
    "blocking_keys",
    "cluster",
    "compare",
    "conflict",
    "evidence",
    "exact_identity",
    "extract_features",
    "extract_many",
    "index_rows",
    "is_strong_key",
    "joins",
    "keys_for",
    "keys_to_fetch",
    "processing_order",
    "rerank",
    "richness",
    "settled",
    "stored_candidates",
    "story_id_for",
]
