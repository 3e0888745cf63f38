"""The lean warm path: what a rerun with nothing to do loads and records.

An unchanged rerun of seed files is answered by `aggregator.unchanged` with plain sqlite3:
it must import none of the heavy packages, record exactly what the full pipeline records,
and give way to the full pipeline whenever anything changed. A run of feeds that all answer
304 loads neither a parser nor the publisher. Imports are read from `python -X importtime`
of the real CLI process.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from conftest import FIXED_NOW, Workspace
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import store, unchanged
from aggregator.config import load_config
from aggregator.pipeline import run_once

HEAVY = frozenset({
    "sqlalchemy", "httpx", "httpcore", "feedparser", "feedparser_rs", "feedgen", "lxml",
    "numpy", "jinja2", "apscheduler", "starlette", "uvicorn",
})
"""Packages an unchanged rerun has no use for (SQLAlchemy alone is most of its time)."""
LATER = "2026-11-23T10:00:00Z"


def imported_run(ws: Workspace, now: str = LATER) -> tuple[subprocess.CompletedProcess[str],
                                                            set[str]]:
    """`python -X importtime -m aggregator --once`: the run and the top-level packages it
    imported."""
    env = {**os.environ, "AGGREGATOR_NOW": now}
    env.pop("AGGREGATOR_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aggregator", "--once", "--config",
         str(ws.config)],
        cwd=ws.root, env=env, capture_output=True, text=True, timeout=120,
    )
    packages = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in done.stderr.splitlines() if line.startswith("import time:")
                and not line.endswith("| imported package")}
    return done, packages


def summary(done: subprocess.CompletedProcess[str]) -> str:
    """The run's summary line without its duration."""
    line = [x for x in done.stderr.splitlines() if x.startswith("aggregate: ")
            and "sources ok" in x][-1]
    return line.rsplit(";", 1)[0]


def sources_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM sources ORDER BY source_id").fetchall()


def test_an_unchanged_rerun_imports_no_heavy_package_and_records_the_full_runs_state(
    workspace: Workspace,
) -> None:
    cold = workspace.run("--once")
    assert cold.returncode == 0, cold.stderr
    saved = workspace.root / "cold.db"
    shutil.copyfile(workspace.state, saved)
    stamps = {name: p.stat().st_mtime_ns for name, p in workspace.output_files().items()}

    done, packages = imported_run(workspace)
    assert done.returncode == 0, done.stderr
    assert packages & HEAVY == set()
    assert "sqlite3" in packages  # it did look at the store
    assert summary(done) == ("aggregate: 2 sources ok, 0 failed; 20 items (0 new, 0 updated); "
                             f"19 stories; 0 files written, {len(stamps)} unchanged")
    assert {n: p.stat().st_mtime_ns for n, p in workspace.output_files().items()} == stamps
    quick_rows = sources_rows(workspace.state)

    # The full pipeline, on the state as the cold run left it, at the same time.
    shutil.copyfile(saved, workspace.state)
    for suffix in ("-wal", "-shm"):
        Path(str(workspace.state) + suffix).unlink(missing_ok=True)
    result = run_once(load_config(workspace.config),
                      now=datetime.fromisoformat(LATER.replace("Z", "+00:00")))
    assert f"aggregate: {result.summary()}".rsplit(";", 1)[0] == summary(done)
    assert sources_rows(workspace.state) == quick_rows
    assert all(row for row in quick_rows)


def change_a_seed(ws: Workspace) -> str:
    seed = sorted(ws.seeds.glob("*.txt"))[0]
    seed.write_text(seed.read_text(encoding="utf-8") + "\nA new item\n\nSource: NATO\n\n"
                    "On 9 December 2024 NATO opened a new office.\n", encoding="utf-8")
    return r"\(1 new, 0 updated\)"


def delete_a_published_file(ws: Workspace) -> str:
    (ws.output / "nato.atom").unlink()
    return r"; 1 files written"


def change_the_agencies(ws: Workspace) -> str:
    text = ws.config.read_text(encoding="utf-8")
    ws.config.write_text(text.replace('name = "NATO"', 'name = "NATO HQ"'), encoding="utf-8")
    return r"; [1-9]\d* files written"


def leave_an_item_unplaced(ws: Workspace) -> str:
    with sqlite3.connect(ws.state) as db:
        db.execute("UPDATE items SET story_id = NULL WHERE item_id = "
                   "(SELECT min(item_id) FROM items)")
    return r"\(0 new, 0 updated\); 19 stories"


def remove_a_seed_file(ws: Workspace) -> str:
    # The other file is unchanged, but the removed one's items must be withdrawn.
    sorted(ws.seeds.glob("*.txt"))[0].unlink()
    return r"^aggregate: 1 sources ok, 0 failed; (?!20 )\d+ items"


def change_the_output_settings(ws: Workspace) -> str:
    text = ws.config.read_text(encoding="utf-8")
    ws.config.write_text(text.replace("Test Newswire", "Other Newswire"), encoding="utf-8")
    return r"; [1-9]\d* files written"


@pytest.mark.parametrize("change", [
    change_a_seed, delete_a_published_file, change_the_agencies, leave_an_item_unplaced,
    remove_a_seed_file, change_the_output_settings,
])
def test_any_change_goes_through_the_full_pipeline(
    workspace: Workspace, change: Callable[[Workspace], str]
) -> None:
    assert workspace.run("--once").returncode == 0
    expected = change(workspace)
    done, packages = imported_run(workspace)
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy" in packages
    assert re.search(expected, summary(done)), summary(done)
    if change is delete_a_published_file:
        assert (workspace.output / "nato.atom").is_file()


def test_a_failing_source_is_never_answered_by_the_quick_check(workspace: Workspace) -> None:
    assert workspace.run("--once").returncode == 0
    with sqlite3.connect(workspace.state) as db:
        db.execute("UPDATE sources SET failures = 1, last_error = 'x' "
                   "WHERE source_id = (SELECT min(source_id) FROM sources)")
    done, packages = imported_run(workspace)
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy" in packages


def test_the_quick_check_knows_the_stores_schema_version() -> None:
    # A migration appended to the store must be looked at here too: until then the quick
    # check stands aside (it answers only at the version it was written for).
    assert len(store.MIGRATIONS) == unchanged.SCHEMA_VERSION


def test_a_store_at_another_version_goes_through_the_full_pipeline(
    workspace: Workspace,
) -> None:
    assert workspace.run("--once").returncode == 0
    with sqlite3.connect(workspace.state) as db:
        db.execute("UPDATE schema_version SET version = 0")
    done, packages = imported_run(workspace)
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy" in packages


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>NATO</title><link>https://www.nato.int/</link>
<item><title>Ministers meet in Brussels</title><link>https://www.nato.int/news/1</link>
<guid>nato-1</guid><pubDate>Wed, 04 Dec 2024 10:00:00 GMT</pubDate>
<description>Ministers met in Brussels on 4 December 2024.</description></item>
</channel></rss>"""


def test_a_run_of_304s_loads_no_parser_and_no_publisher(
    tmp_path: Path, loopback: HTTPServer
) -> None:
    etag = '"v1"'

    def answer(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(FEED, content_type="application/rss+xml", headers={"ETag": etag})

    loopback.expect_request("/feed.xml").respond_with_handler(answer)
    ws = Workspace(tmp_path)
    ws.write_config(f'[[sources]]\ntype = "feed"\nagency = "nato"\n'
                    f'url = "{loopback.url_for("/feed.xml")}"\n', seeds=False)
    cold, cold_packages = imported_run(ws, FIXED_NOW)
    assert cold.returncode == 0, cold.stderr
    assert "feedparser_rs" in cold_packages  # a plain feed takes the fast path ...
    assert "feedparser" not in cold_packages  # ... and never loads feedparser

    warm, packages = imported_run(ws)
    assert warm.returncode == 0, warm.stderr
    assert "0 new" in summary(warm)
    assert packages & {"feedparser", "feedparser_rs", "feedgen", "lxml", "numpy",
                       "jinja2"} == set()
