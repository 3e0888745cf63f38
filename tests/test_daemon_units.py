"""Unit tests of the daemon's pure parts: config keys, schedule plan, status, HTTP rules, logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.config import ServeConfig, load_config
from aggregator.errors import ConfigError
from aggregator.logs import JsonFormatter, TextFormatter, facts
from aggregator.model import RunResult, SourceReport
from aggregator.scheduler import SchedulePlan
from aggregator.serve import Address, accepts_gzip, not_modified, resolve_address
from aggregator.status import DaemonStatus, RunRecord

BASE = """
[output]
dir = "../output"

[agencies.nato]
name = "NATO"
"""


def config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config" / "aggregator.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BASE + body, encoding="utf-8")
    return path


def test_serve_and_schedule_keys_default_when_left_out(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, ""))
    assert config.serve == ServeConfig()
    assert (config.serve.host, config.serve.port, config.serve.access_log) == (
        "127.0.0.1", 8080, False)
    assert config.schedule.jitter is None and config.schedule.misfire_grace is None


def test_serve_and_schedule_keys_are_read(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, """
[schedule]
interval = "10m"
jitter = "0s"
misfire_grace = "2m"

[serve]
host = "0.0.0.0"
port = 9000
max_age = "5m"
stale_after = "1h"
access_log = true
"""))
    assert config.schedule.interval == 600 and config.schedule.jitter == 0
    assert config.schedule.misfire_grace == 120
    assert config.serve == ServeConfig(host="0.0.0.0", port=9000, max_age=300.0,
                                       stale_after=3600.0, access_log=True)


@pytest.mark.parametrize(("body", "key", "reason"), [
    ("[serve]\nport = 70000\n", "serve.port", "at most 65535"),
    ("[serve]\nport = \"8080\"\n", "serve.port", "expected an integer"),
    ("[serve]\nhots = \"x\"\n", "serve.hots", "unknown key"),
    ("[serve]\nstale_after = \"0s\"\n", "serve.stale_after", "longer than zero"),
    ("[schedule]\njitter = \"soon\"\n", "schedule.jitter", "not a duration"),
    ("[schedule]\nmisfire_grace = 0\n", "schedule.misfire_grace", "longer than zero"),
])
def test_bad_keys_name_the_file_and_key(tmp_path: Path, body: str, key: str,
                                        reason: str) -> None:
    path = config_file(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert reason in str(caught.value)


def test_the_tick_is_the_shortest_interval_and_defaults_follow_it(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, """
[schedule]
interval = "15m"

[[sources]]
type = "feed"
agency = "nato"
url = "https://example.org/a.xml"
interval = "5m"

[[sources]]
type = "feed"
agency = "nato"
url = "https://example.org/b.xml"
interval = "1m"
enabled = false
"""))
    plan = SchedulePlan.of(config)
    assert plan.tick == 300  # the disabled feed's 1m does not count
    assert plan.jitter == 30 and plan.misfire_grace == 300
    assert plan.stale_after(config) == 900
    assert plan.max_age(config) == 300


def test_tiny_intervals_keep_apscheduler_whole_second_grace(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, '[schedule]\ninterval = "50ms"\n'))
    plan = SchedulePlan.of(config)
    assert plan.tick == pytest.approx(0.05)
    assert plan.misfire_grace == 1
    assert plan.stale_after(config) == 60
    assert plan.max_age(config) == 0


@pytest.mark.parametrize(("option", "expected"), [
    ("", Address("127.0.0.1", 8080)),
    ("9000", Address("127.0.0.1", 9000)),
    (":9000", Address("127.0.0.1", 9000)),
    ("0.0.0.0", Address("0.0.0.0", 8080)),
    ("0.0.0.0:80", Address("0.0.0.0", 80)),
    ("localhost:0", Address("localhost", 0)),
    ("[::1]:8081", Address("::1", 8081)),
    ("[::]", Address("::", 8080)),
    ("::1", Address("::1", 8080)),
])
def test_serve_addresses(option: str, expected: Address) -> None:
    assert resolve_address(option, ServeConfig()) == expected


@pytest.mark.parametrize("option", ["host:port", "[::1", "[::1]x", "1.2.3.4:99999", "a:-1"])
def test_bad_serve_addresses_name_the_option(option: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_address(option, ServeConfig())
    assert str(caught.value).startswith("--serve: ")


@pytest.mark.parametrize(("header", "gzip"), [
    ("gzip", True),
    ("gzip, deflate, br", True),
    ("br;q=1.0, gzip;q=0.8", True),
    ("GZIP", True),
    ("x-gzip", True),
    ("*", True),
    ("", False),
    ("identity", False),
    ("gzip;q=0", False),
    ("gzip;q=0.0, *", False),
    ("*;q=0", False),
    ("br", False),
])
def test_accept_encoding(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


def test_conditional_requests() -> None:
    etag, mtime = '"abc"', 1_732_000_000
    assert not_modified({"if-none-match": '"abc"'}, etag, mtime)
    assert not_modified({"if-none-match": 'W/"abc"'}, etag, mtime)
    assert not_modified({"if-none-match": '"x", "abc"'}, etag, mtime)
    assert not not_modified({"if-none-match": '"abcd"'}, etag, mtime)
    assert not not_modified({}, etag, mtime)
    same = "Tue, 19 Nov 2024 07:06:40 GMT"
    assert datetime(2024, 11, 19, 7, 6, 40, tzinfo=UTC).timestamp() == mtime
    assert not_modified({"if-modified-since": same}, etag, mtime)
    assert not not_modified({"if-modified-since": "Tue, 19 Nov 2024 07:06:39 GMT"},
                            etag, mtime)
    assert not not_modified({"if-modified-since": "not a date"}, etag, mtime)
    # If-None-Match decides when both are sent.
    assert not not_modified({"if-none-match": '"x"', "if-modified-since": same}, etag, mtime)


def result(*sources: SourceReport, stories: int = 19) -> RunResult:
    return RunResult(
        started=datetime(2026, 1, 1, tzinfo=UTC), duration=0.2, sources=sources,
        items_new=20, items_updated=0, items_total=20, stories=stories,
        files_written=("combined.atom",), files_unchanged=14,
    )


def test_health_verdicts() -> None:
    status = DaemonStatus(stale_after=60)
    assert status.health(1000).reason == "no run has finished yet"
    status.run_started(1000)
    assert status.health(1000).reason == "first run in progress"
    ok = result(SourceReport("seeds/a.txt", ok=True, items=20))
    status.run_finished(RunRecord(1000, 1001, ok), {"combined.atom": 42})
    health = status.health(1010)
    assert health.healthy and health.body["stories"] == 19
    assert not status.health(1062).healthy
    assert str(status.health(1062).reason).startswith("stale: ")

    failed = result(SourceReport("seeds/a.txt", ok=True, items=10),
                    SourceReport("seeds/b.txt", ok=False, error="seeds/b.txt:3: bad line"))
    status.run_finished(RunRecord(1100, 1101, failed), {})
    health = status.health(1102)
    assert health.reason == "source failed: seeds/b.txt:3: bad line"
    assert health.body["sources"]["failed_sources"] == [
        {"name": "seeds/b.txt", "error": "seeds/b.txt:3: bad line"}]

    status.run_finished(RunRecord(1200, 1201, None, "state.db: cannot open"), {})
    health = status.health(1202)
    assert health.reason == "last run failed: state.db: cannot open"
    assert health.body["stories"] == 19  # the facts of the last run that got that far
    assert health.body["last_success"] == "1970-01-01T00:16:41+00:00"


def test_prometheus_exposition_parses_and_escapes_labels() -> None:
    status = DaemonStatus(stale_after=60)
    odd = 'seeds/we"ird\\name\n.txt'
    status.run_finished(RunRecord(0, 0.3, result(SourceReport(odd, ok=False, error="x"))),
                        {"combined.atom": 1234})
    status.run_finished(RunRecord(1, 1.01, None, "boom"), {})
    status.reloaded(False)
    families = {f.name: f for f in text_string_to_metric_families(status.prometheus())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("newswire_runs_total", (("outcome", "source_failed"),))] == 1
    assert samples[("newswire_runs_total", (("outcome", "error"),))] == 1
    assert samples[("newswire_source_errors_total", (("source", odd),))] == 1
    assert samples[("newswire_source_up", (("source", odd),))] == 0
    assert samples[("newswire_published_bytes", (("file", "combined.atom"),))] == 1234
    assert samples[("newswire_run_duration_seconds_bucket", (("le", "0.05"),))] == 1
    assert samples[("newswire_run_duration_seconds_bucket", (("le", "0.5"),))] == 2
    assert samples[("newswire_run_duration_seconds_count", ())] == 2
    assert samples[("newswire_config_reloads_total", (("result", "failed"),))] == 1


def record(message: str, **values: object) -> logging.LogRecord:
    made = logging.LogRecord("aggregator.scheduler", logging.INFO, __file__, 1, message, (),
                             None)
    for key, value in facts(**values).items():
        setattr(made, key, value)
    return made


def test_text_logs_are_key_value_pairs() -> None:
    line = TextFormatter().format(record(
        "run", outcome="ok", duration=0.12345, sources_ok=2, failed=["a b.txt", "c"],
        note='say "hi"', empty="", flag=True,
    ))
    assert line == ('aggregate: info: run outcome=ok duration=0.123 sources_ok=2 '
                    'failed="a b.txt,c" note="say \\"hi\\"" empty="" flag=true')
    assert TextFormatter().format(record("plain message")) == "aggregate: info: plain message"


def test_json_logs_carry_the_facts_as_keys() -> None:
    line = json.loads(JsonFormatter().format(record("run", outcome="ok", msg="clash")))
    assert line["msg"] == "run" and line["msg_"] == "clash"
    assert line["outcome"] == "ok" and line["level"] == "info"
    assert line["logger"] == "aggregator.scheduler"
    assert datetime.fromisoformat(line["ts"]).tzinfo is not None


def test_the_daemon_fetches_feeds_without_their_own_interval_at_the_schedules(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from aggregator.config import FeedSource, ScheduleConfig, SeedFileSource
    from aggregator.scheduler import with_feed_intervals

    seeds = SeedFileSource(path="/x/*.txt")
    plain = FeedSource(agency="nato", url="https://a.test/rss")
    hourly = FeedSource(agency="nato", url="https://b.test/rss", interval=3600.0)
    config = replace(load_config(config_file(tmp_path, "")),
                     schedule=ScheduleConfig(interval=900.0), sources=(seeds, plain, hourly))
    daemon = with_feed_intervals(config)
    assert daemon.sources == (seeds, replace(plain, interval=900.0), hourly)
    assert config.sources == (seeds, plain, hourly)


def test_a_feed_is_due_a_little_before_its_interval_is_up() -> None:
    from datetime import UTC, datetime, timedelta

    from aggregator.config import FeedSource, FetchConfig
    from aggregator.sources.feed import FeedUnit
    from aggregator.store import SourceState

    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    unit = FeedUnit(source=FeedSource(agency="nato", url="https://a.test/rss", interval=900.0),
                    policy=FetchConfig())

    def state(seconds_left: int) -> SourceState:
        return SourceState(source_id=unit.source_id, kind="feed",
                           next_attempt=now + timedelta(seconds=seconds_left))

    assert unit.due(None, now)
    assert unit.due(state(30), now)
    assert not unit.due(state(120), now)
