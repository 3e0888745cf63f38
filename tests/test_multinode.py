"""Several nodes on one store, as an operator runs them: real processes, the real PostgreSQL
of the machine, loopback feeds. And one node per SQLite file."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conftest import FIXED_NOW, Workspace, aggregate_command, postgres_schema
from daemon_process import DaemonProcess, poll
from feed_farm import FeedFarm

FEEDS = 300
INTERVAL = 4.0
"""Seconds between a feed's fetches (and the daemons' tick)."""
LEASE = 4.0
"""Seconds a node holds what it claimed: a killed node's feeds are free again after this."""
SLACK = 3.0
"""Allowance for a busy 2-core machine (daemon start-up, a slow round)."""
REAL_CLOCK = {"AGGREGATOR_NOW": ""}
"""The daemons run on the real clock: feeds fall due as time passes."""


def node(root: Path, name: str, store_url: str, farm: FeedFarm | None, *,
         seeds: bool = False) -> Workspace:
    """A node's workspace: its own config and output directory, the shared store."""
    workspace = Workspace(root)
    if seeds:
        workspace.copy_bundled_seeds()
    header = textwrap.dedent(f"""
        [output]
        dir = "../output"
        base_url = "http://feeds.example.test/"
        title = "Test Newswire"

        [store]
        url = "{store_url}"
        node = "{name}"
        lease = "{LEASE:g}s"
        batch = 25

        [schedule]
        interval = "{INTERVAL:g}s"
        jitter = "0s"

        [fetch]
        per_host = 16
        timeout = "10s"
    """)
    workspace.write_config(farm.sources_toml() if farm else "", header=header, seeds=seeds)
    return workspace


def published(workspace: Workspace) -> dict[str, bytes]:
    """Every published file of a node, by name (hidden files left out)."""
    return {name: path.read_bytes() for name, path in workspace.output_files().items()
            if path.is_file()}


def generation(workspace: Workspace) -> str | None:
    """Which store state (generation) a node's output directory shows (None before its
    first publish)."""
    try:
        record = json.loads((workspace.output / ".aggregate.published").read_text())
        return str(record["stamp"]).split(":", 1)[0]
    except (OSError, ValueError, KeyError):
        return None


def held_by(engine: sa.Engine, holder: str) -> set[str] | None:
    """Sources `holder` leases now (None if none)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id FROM source_leases WHERE holder = :h"),
                            {"h": holder}).scalars()
        held = set(rows)
    return held or None


def assert_store_is_consistent(engine: sa.Engine, *, items: int | None = None) -> None:
    """No item stored twice, no story without members, no item outside a story."""
    with engine.connect() as conn:
        def count(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar_one())

        total = count("SELECT count(*) FROM items")
        if items is not None:
            assert total == items
        assert count("SELECT count(DISTINCT agency || '|' || coalesce(guid, '') || '|' || "
                     "title_key || '|' || content_hash) FROM items") == total, "duplicate items"
        assert count("SELECT count(*) FROM stories s WHERE NOT EXISTS "
                     "(SELECT 1 FROM items i WHERE i.story_id = s.story_id)") == 0, "orphans"
        assert count("SELECT count(*) FROM items WHERE story_id IS NULL") == 0
        assert count("SELECT count(*) FROM items i WHERE NOT EXISTS "
                     "(SELECT 1 FROM stories s WHERE s.story_id = i.story_id)") == 0


def feed_number(source_id: str) -> int:
    """The farm's number of a feed source id (`feed:http://127.0.0.1:PORT/feed/N.xml`)."""
    return int(source_id.rsplit("/", 1)[1].removesuffix(".xml"))


def gaps(times: Sequence[float]) -> list[float]:
    """Seconds between consecutive fetches."""
    return [b - a for a, b in itertools.pairwise(times)]


def test_three_daemons_share_300_feeds_and_take_over_a_killed_node(tmp_path: Path) -> None:
    with postgres_schema() as store_url, FeedFarm(FEEDS) as farm:
        engine = sa.create_engine(store_url)
        nodes = [node(tmp_path / f"node-{n}", f"node-{n}", store_url, farm) for n in (1, 2, 3)]
        daemons = [DaemonProcess(ws, env=REAL_CLOCK) for ws in nodes]
        try:
            poll(lambda: True if all(farm.fetches[n] for n in range(FEEDS)) else None,
                 timeout=60, interval=0.2, what="every feed fetched once")
            first_round_at = time.monotonic()
            # Kill node-2 with SIGKILL while it holds leases: mid-run, nothing released.
            held = poll(lambda: held_by(engine, "node-2"), timeout=30, interval=0.01,
                        what="node-2 holding leases")
            daemons[1].process.kill()
            killed_at = time.monotonic()
            daemons[1].process.wait(10)
            orphaned = held | (held_by(engine, "node-2") or set())
            orphaned_numbers = {feed_number(s) for s in orphaned}
            # Taken over within one lease (plus the tick that notices it).
            poll(lambda: True if all(
                any(t > killed_at for t in farm.fetches[feed_number(s)]) for s in orphaned
            ) else None, timeout=LEASE + INTERVAL + SLACK, interval=0.1,
                 what=f"another node fetching the {len(orphaned)} feeds node-2 held")
            taken_over_in = max(
                min(t for t in farm.fetches[feed_number(s)] if t > killed_at) - killed_at
                for s in orphaned)
            assert taken_over_in <= LEASE + INTERVAL + SLACK
            # Both survivors publish the same store state, byte for byte.
            poll(lambda: True if generation(nodes[0]) == generation(nodes[2]) is not None
                 else None, timeout=3 * INTERVAL + SLACK, interval=0.2,
                 what="the survivors publishing the same store state")
            first, third = published(nodes[0]), published(nodes[2])
            assert sorted(first) == sorted(third)
            assert [n for n in first if first[n] != third[n]] == []
            ended_at = time.monotonic()
            for daemon in (daemons[0], daemons[2]):
                assert daemon.stop() == 0, daemon.log
            # node-2 comes back for one run: its directory catches up from the store.
            again = nodes[1].run("--once", env=REAL_CLOCK, timeout=60)
            assert again.returncode == 0, again.stderr
            outputs = [published(ws) for ws in nodes]
            assert outputs[0] and outputs[0] == outputs[1] == outputs[2]
            fetches = farm.snapshot()
        finally:
            for daemon in daemons:
                daemon.close()
        assert_store_is_consistent(engine, items=FEEDS * 2)
        combined = json.loads(outputs[0]["combined.json"])
        for entry in combined["items"]:
            guids = [m["guid"] for m in entry["_aggregator"]["members"]]
            assert len(guids) == len(set(guids)), entry["id"]
        engine.dispose()
    # Never twice in one interval (two nodes fetching one feed would be well under a
    # second apart; due times count in whole seconds from the claim, so a fair gap may be
    # a second or so short of the interval); once the first round is done, every interval
    # (a killed node's feeds: within its lease and a tick).
    for number, times in fetches.items():
        steps = gaps([t for t in times if t <= ended_at])
        assert all(step > INTERVAL / 4 for step in steps), (number, steps)
        steady = gaps([t for t in times if first_round_at <= t <= ended_at])
        limit = LEASE + INTERVAL + SLACK if number in orphaned_numbers else 2 * INTERVAL + SLACK
        assert all(step <= limit for step in steady), (number, steady)


def _start_once(workspace: Workspace) -> subprocess.Popen[str]:
    env: dict[str, Any] = {**os.environ, "AGGREGATOR_NOW": FIXED_NOW}
    env.pop("AGGREGATOR_CONFIG", None)
    return subprocess.Popen([*aggregate_command(), "--once", "--config", str(workspace.config)],
                            cwd=workspace.root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_two_concurrent_one_shot_runs_on_an_empty_database_both_succeed(tmp_path: Path) -> None:
    """Three rounds of the race that once failed half the time (schema creation) or stored
    a seed file twice."""
    for round_number in range(3):
        with postgres_schema() as store_url:
            pair = [node(tmp_path / f"r{round_number}-{n}", f"n{n}", store_url, None, seeds=True)
                    for n in (1, 2)]
            runs = [_start_once(ws) for ws in pair]
            results = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]
            for status, stderr in results:
                assert status == 0, stderr
            engine = sa.create_engine(store_url)
            assert_store_is_consistent(engine, items=20)
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM stories")).scalar_one() == 19
            engine.dispose()
            # Each publishes the store's state in its own directory: the same bytes.
            for ws in pair:
                assert ws.run("--once").returncode == 0
            assert published(pair[0]) and published(pair[0]) == published(pair[1])


def test_a_second_process_on_one_sqlite_file_exits_3_whatever_its_output(tmp_path: Path) -> None:
    first = Workspace(tmp_path / "first")
    first.copy_bundled_seeds()
    first.write_config('[schedule]\ninterval = "1h"\n')
    second = Workspace(tmp_path / "second")
    second.copy_bundled_seeds()
    state = first.state
    second.write_config("", header=textwrap.dedent(f"""
        [output]
        dir = "../elsewhere"
        base_url = "http://feeds.example.test/"

        [store]
        path = "{state}"
    """))
    daemon = DaemonProcess(first)
    try:
        daemon.wait_for_runs(1)
        for args in (("--once",), ()):
            # The daemon form is bounded by its immediate exit; a run would not return.
            other = second.run(*args, timeout=30)
            assert other.returncode == 3, other.stderr
            assert f"{state}.lock: another aggregate run holds this lock" in other.stderr
        assert not (tmp_path / "second" / "elsewhere" / "combined.atom").exists()
        assert daemon.stop() == 0
    finally:
        daemon.close()
    assert second.run("--once").returncode == 0  # free again once the daemon is gone


def test_config_errors_name_the_new_store_keys(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    for body, key in (('lease = "soon"', "store.lease"), ('node = "a b"', "store.node"),
                      ("batch = 0", "store.batch"), ("nodes = 2", "store.nodes")):
        workspace.write_config("", seeds=False, header=textwrap.dedent(f"""
            [output]
            dir = "../output"
            [store]
            {body}
        """))
        result = workspace.run("--once")
        assert result.returncode == 2, result.stderr
        assert key in result.stderr


def test_a_reload_keeps_the_store_it_locked(tmp_path: Path) -> None:
    from aggregator.config import load_config
    from aggregator.scheduler import Daemon
    from aggregator.status import DaemonStatus

    workspace = Workspace(tmp_path)
    workspace.write_config("", seeds=False)
    config = load_config(workspace.config)
    daemon = Daemon(config, DaemonStatus(stale_after=60.0))
    text = workspace.config.read_text().replace("../state/aggregator.db", "../other/state.db")
    workspace.config.write_text(text)
    daemon.reload()
    assert daemon.config.store.url == config.store.url
    assert "newswire_config_reloads_total{result=\"failed\"} 1" in daemon.status.prometheus()


def test_postgresql_tests_fail_under_ci_when_no_server_answers() -> None:
    """Under CI a missing PostgreSQL is a failure, not a quiet skip (elsewhere: a skip)."""
    import sys

    test = "tests/test_store.py::test_source_state_round_trips[postgresql]"
    env = {**os.environ, "NEWSWIRE_TEST_POSTGRES": "postgresql+psycopg://postgres@127.0.0.1:9/x"}
    env.pop("CI", None)
    root = Path(__file__).resolve().parent.parent
    quiet = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                           cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and "1 skipped" in quiet.stdout, quiet.stdout
    under_ci = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=root,
        env={**env, "CI": "true"}, capture_output=True, text=True, timeout=60)
    assert under_ci.returncode == 1, under_ci.stdout
    assert "CI=true: PostgreSQL tests must run" in under_ci.stdout


def test_a_slow_batch_keeps_its_lease_while_its_node_lives(
    tmp_path: Path, loopback: Any
) -> None:
    """A feed that takes longer than a lease to answer is not fetched again by a second
    node: the first renews its lease while it waits."""
    from test_feeds_e2e import Entry, rss
    from werkzeug import Request, Response

    requests: list[float] = []

    def slow(request: Request) -> Response:
        requests.append(time.monotonic())
        time.sleep(3.5)
        return Response(rss([Entry("Slow news from the Sava bridge", guid="slow-1")]),
                        content_type="application/rss+xml")

    loopback.expect_request("/slow").respond_with_handler(slow)
    source = (f'\n[[sources]]\ntype = "feed"\nagency = "nato"\nurl = '
              f'"{loopback.url_for("/slow")}"\ninterval = "1h"\n')
    with postgres_schema() as store_url:
        pair = [node(tmp_path / f"n{n}", f"n{n}", store_url, None) for n in (1, 2)]
        for ws in pair:
            text = ws.config.read_text().replace(f'lease = "{LEASE:g}s"', 'lease = "1s"')
            ws.config.write_text(text + source)
        first = _start_once(pair[0])
        poll(lambda: True if requests else None, timeout=30, what="the first node fetching")
        time.sleep(1.2)  # the first lease would have expired by now
        second = pair[1].run("--once", timeout=60)
        assert second.returncode == 0, second.stderr
        assert first.wait(timeout=60) == 0, first.communicate()[1]
    assert len(requests) == 1
