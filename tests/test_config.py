"""Config loading: defaults, the shipped config, and errors that name file, key and reason."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from conftest import REPO

from aggregator.config import (
    DedupConfig,
    FeedSource,
    SeedFileSource,
    load_config,
    parse_duration,
)
from aggregator.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "aggregator.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_has_seeds_on_and_the_five_live_feeds_off() -> None:
    config = load_config(REPO / "config" / "aggregator.toml")
    assert set(config.agencies) == {"nato", "europol", "eurojust", "interpol", "jcs"}
    seeds = [s for s in config.sources if isinstance(s, SeedFileSource)]
    feeds = [s for s in config.sources if isinstance(s, FeedSource)]
    assert len(seeds) == 1 and seeds[0].enabled
    assert sorted(f.agency for f in feeds) == ["eurojust", "europol", "interpol", "jcs", "nato"]
    assert not any(f.enabled for f in feeds)
    assert config.output.dir == REPO / "output"
    assert config.store.sqlite_path == REPO / "state" / "aggregator.db"


def test_minimal_config_gets_defaults_and_resolves_paths_against_its_directory(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '[[sources]]\ntype = "seedfile"\npath = "../seeds/*.txt"\n')
    config = load_config(path)
    assert config.output.dir == tmp_path / "output"
    assert config.output.base_url == "http://localhost:8080/"
    assert config.output.max_entries == 200
    assert config.store.url == f"sqlite:///{tmp_path / 'state' / 'aggregator.db'}"
    assert config.schedule.interval == 900
    assert config.dedup.window_days == 14
    source = config.sources[0]
    assert isinstance(source, SeedFileSource) and source.enabled
    assert source.path == str(tmp_path / "seeds" / "*.txt")


def test_base_url_gets_a_trailing_slash_and_postgres_urls_get_psycopg(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        [output]
        base_url = "https://news.example.org/wire"
        [store]
        url = "postgresql://user@db.example.org/newswire"
    """.replace("\n        ", "\n")))
    assert config.output.base_url == "https://news.example.org/wire/"
    assert config.store.url == "postgresql+psycopg://user@db.example.org/newswire"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[output]\nmax_entries = 'ten'\n", "output.max_entries",
         "expected an integer, got string"),
        ("[output]\nmax_entries = 0\n", "output.max_entries", "must be at least 1"),
        ("[output]\ndirr = 'x'\n", "output.dirr", "unknown key"),
        ("[outptu]\n", "outptu", "unknown key"),
        ("[output]\nbase_url = 'ftp://x/'\n", "output.base_url", "must be an http(s) URL"),
        ("[schedule]\ninterval = 'soon'\n", "schedule.interval", "not a duration"),
        ("[store]\npath = 'a.db'\nurl = 'postgresql://x/y'\n", "store.url", "not both"),
        ("[agencies.NATO]\nname = 'NATO'\n", "agencies.NATO", "lowercase"),
        ("[agencies.nato]\nname = 'NATO'\nalias = ['x']\n", "agencies.nato.alias", "unknown key"),
        ("[agencies.nato]\naliases = 'NATO'\n", "agencies.nato.aliases", "array of strings"),
        ("[[sources]]\ntype = 'seedfile'\n", "sources[1].path", "missing required key"),
        ("[[sources]]\ntype = 'rss'\n", "sources[1].type", "unknown source type 'rss'"),
        ("[[sources]]\ntype = 'seedfile'\npath = 'x'\nenabled = 'yes'\n", "sources[1].enabled",
         "expected true/false, got string"),
        ("[[sources]]\ntype = 'feed'\nagency = 'fbi'\nurl = 'https://x/'\n", "sources[1].agency",
         "unknown agency 'fbi'"),
        ("[agencies.nato]\n[[sources]]\ntype='seedfile'\npath='x'\n[[sources]]\ntype = 'feed'\n"
         "agency = 'nato'\nurl = 'file:///etc/passwd'\n", "sources[2].url", "http(s) URL"),
        ("[dedup]\nmerge_threshold = 1.5\n", "dedup.merge_threshold", "at most 1.0"),
        ("[dedup]\nmerge_threshold = 0.1\n", "dedup.near_miss_threshold", "must not exceed"),
    ],
)
def test_errors_name_the_file_the_key_and_the_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_missing_file_and_bad_toml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    path = write(tmp_path, "[output\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 1") as caught:
        load_config(path)
    assert caught.value.file == str(path)


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h30m", 5400), ("90s", 90), ("2d", 172800),
                          (45, 45), (0.5, 0.5), ("250ms", 0.25)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "-5m", 0, True, "5 minutes", "5m x"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_dedup_defaults_readme_shows_are_the_defaults() -> None:
    # README's example config says "defaults shown" for [dedup]: they must be the code's
    # (the fitted thresholds change with each refit).
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[dedup]" in b)
    shown = tomllib.loads(block)["dedup"]
    defaults = DedupConfig()
    assert shown and {key: getattr(defaults, key) for key in shown} == shown
