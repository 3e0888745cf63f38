"""newswire: aggregate and republish the news of security and justice agencies.

The public surface: load a config, run once, read the result. Everything else is internal.
"""

__version__ = "0.1.0"

from aggregator.config import Config, load_config
from aggregator.errors import (
    AggregatorError,
    ConfigError,
    FetchError,
    LockHeldError,
    ParseError,
    PublishError,
    SourceError,
    StoreError,
)
from aggregator.model import RunResult, SourceReport, Story


def run_once(config: Config) -> RunResult:
    """Read every enabled source once, deduplicate and publish (see `pipeline.run_once`)."""
    from aggregator.pipeline import run_once as _run_once

    return _run_once(config)


__all__ = [
    "AggregatorError",
    "Config",
    "ConfigError",
    "FetchError",
    "LockHeldError",
    "ParseError",
    "PublishError",
    "RunResult",
    "SourceError",
    "SourceReport",
    "StoreError",
    "Story",
    "__version__",
    "load_config",
    "run_once",
]
