"""The [fetch] table and feed sources in the config: defaults, validation, messages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from aggregator.config import FetchConfig, parse_config
from aggregator.errors import ConfigError

BASE = """
[agencies.nato]
name = "NATO"

[[sources]]
type = "feed"
agency = "nato"
url = "https://www.nato.int/rss.xml"
"""


def config_of(text: str) -> FetchConfig:
    return parse_config(tomllib.loads(BASE + text), Path("/etc/newswire/aggregator.toml")).fetch


def test_defaults_without_a_fetch_table() -> None:
    fetch = config_of("")
    assert fetch == FetchConfig()
    assert (fetch.timeout, fetch.max_bytes, fetch.per_host, fetch.backoff) == (30, 10**7, 4, 300)


def test_every_key() -> None:
    fetch = config_of('[fetch]\ntimeout = "5s"\nmax_bytes = 2048\nconcurrency = 4\n'
                      'per_host = 1\nmax_redirects = 0\nbackoff = "1m"\nmax_backoff = "2h"\n')
    assert fetch == FetchConfig(timeout=5, max_bytes=2048, concurrency=4, per_host=1,
                                max_redirects=0, backoff=60, max_backoff=7200)


@pytest.mark.parametrize(("table", "message"), [
    ("[fetch]\ntimout = \"5s\"\n", "fetch.timout: unknown key"),
    ("[fetch]\ntimeout = \"soon\"\n", "fetch.timeout: not a duration"),
    ("[fetch]\nmax_bytes = 10\n", "fetch.max_bytes: must be at least 1024"),
    ("[fetch]\nper_host = 0\n", "fetch.per_host: must be at least 1"),
    ("[fetch]\nconcurrency = \"many\"\n", "fetch.concurrency: expected an integer"),
    ("[fetch]\nbackoff = \"2d\"\n", "fetch.backoff: must not exceed max_backoff"),
])
def test_bad_fetch_settings_name_the_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_of(table)


def test_a_feed_source_keeps_interval_and_enabled() -> None:
    config = parse_config(tomllib.loads(BASE.replace(
        'url = "https://www.nato.int/rss.xml"',
        'url = "https://www.nato.int/rss.xml"\ninterval = "1h"\nenabled = false')),
        Path("/etc/newswire/aggregator.toml"))
    (source,) = config.sources
    assert source.interval == 3600 and not source.enabled and config.enabled_sources == ()
