"""The clock: the one place that reads the time.

`AGGREGATOR_NOW` (an ISO 8601 time) pins it, for reproducible runs and golden-file tests.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from aggregator.errors import ConfigError

NOW_ENV_VAR = "AGGREGATOR_NOW"


def now() -> datetime:
    """The current time, timezone-aware UTC (or the time $AGGREGATOR_NOW pins)."""
    pinned = os.environ.get(NOW_ENV_VAR)
    if pinned:
        try:
            moment = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(NOW_ENV_VAR, None, f"not an ISO 8601 time: {pinned!r}") from None
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def real_now() -> datetime:
    """The current time, never pinned: WebSub leases and retries run on the real clock,
    whatever time $AGGREGATOR_NOW gives the published output."""
    return datetime.now(UTC)


def wall_now() -> datetime:
    """The real current time, UTC, even when $AGGREGATOR_NOW pins `now`: leases between
    nodes expire in real time (the same clock as `real_now`)."""
    return real_now()
