"""Shared fixtures: the CLI as a subprocess, config files on temp dirs, real stores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
DATA = Path(__file__).resolve().parent / "data"
POSTGRES_URL = os.environ.get(
    "NEWSWIRE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FIXED_NOW = "2026-11-23T09:00:00Z"
"""Runs pin the clock (AGGREGATOR_NOW), so first-seen dates in golden files are stable."""

AGENCIES_TOML = """
[agencies.nato]
name = "NATO"
homepage = "https://www.nato.int/"

[agencies.europol]
name = "Europol"
homepage = "https://www.europol.europa.eu/"

[agencies.eurojust]
name = "Eurojust"
homepage = "https://www.eurojust.europa.eu/"

[agencies.interpol]
name = "INTERPOL"
aliases = ["Interpol (news and events)"]
homepage = "https://www.interpol.int/"

[agencies.jcs]
name = "US Joint Chiefs of Staff"
aliases = ["US Defense Joint Chiefs of Staff"]
homepage = "https://www.jcs.mil/"
"""


def aggregate_command() -> list[str]:
    """The `aggregate` console script of this environment, as a user runs it."""
    script = Path(sys.executable).parent / "aggregate"
    if script.exists():
        return [str(script)]
    found = shutil.which("aggregate")
    return [found] if found else [sys.executable, "-m", "aggregator"]


@dataclass
class Workspace:
    """A temp directory with a config, seeds, an output dir and a state dir."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config" / "aggregator.toml"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def state(self) -> Path:
        return self.root / "state" / "aggregator.db"

    def write_config(self, body: str, *, agencies: bool = True, seeds: bool = True,
                     header: str | None = None) -> Path:
        """Write the config: output/store tables, the five agencies, a seed source, `body`."""
        self.config.parent.mkdir(parents=True, exist_ok=True)
        parts = [header if header is not None else textwrap.dedent("""
            [output]
            dir = "../output"
            base_url = "http://feeds.example.test/"
            title = "Test Newswire"
            max_entries = 200

            [store]
            path = "../state/aggregator.db"
        """)]
        if agencies:
            parts.append(AGENCIES_TOML)
        if seeds:
            parts.append('[[sources]]\ntype = "seedfile"\npath = "../seeds/*.txt"\n')
        parts.append(textwrap.dedent(body))
        self.config.write_text("\n".join(parts), encoding="utf-8")
        return self.config

    def copy_bundled_seeds(self) -> None:
        """Copy the repository's seed files into this workspace."""
        self.seeds.mkdir(parents=True, exist_ok=True)
        for path in SEEDS.glob("*.txt"):
            shutil.copyfile(path, self.seeds / path.name)

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `aggregate ARGS --config <this config>` as a subprocess."""
        full_env = {**os.environ, "AGGREGATOR_NOW": FIXED_NOW, **(env or {})}
        full_env.pop("AGGREGATOR_CONFIG", None)
        return subprocess.run(
            [*aggregate_command(), *args, "--config", str(self.config)],
            cwd=self.root, env=full_env, capture_output=True, text=True, timeout=timeout,
        )

    def output_files(self) -> dict[str, Path]:
        """Published files by name (hidden files such as the lock left out)."""
        return {p.name: p for p in sorted(self.output.glob("*")) if not p.name.startswith(".")}


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh workspace holding copies of the bundled seeds and a default config."""
    ws = Workspace(tmp_path)
    ws.copy_bundled_seeds()
    ws.write_config("")
    return ws


@pytest.fixture(scope="session")
def loopback_server() -> Iterator[HTTPServer]:
    """One threaded HTTP server on 127.0.0.1 for the session (tests that fetch feeds)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def loopback(loopback_server: HTTPServer) -> HTTPServer:
    """The loopback server with no handlers from earlier tests."""
    loopback_server.clear()
    return loopback_server


def postgres_available() -> bool:
    """True when the PostgreSQL test server answers."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def require_postgres() -> None:
    """Skip when no PostgreSQL answers, except under CI (`CI=true`), where that fails."""
    if postgres_available():
        return
    message = f"no PostgreSQL server answers at {POSTGRES_URL}"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL on a fresh PostgreSQL schema of its own, dropped afterwards."""
    require_postgres()
    import sqlalchemy as sa

    schema = f"newswire_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of an empty PostgreSQL store (a schema of its own)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'store.db'}"
        return
    with postgres_schema() as url:
        yield url


def seed_text(items: Sequence[tuple[str, str, str]]) -> str:
    """Seed-file text for (title, agency, body) triples."""
    return "\n".join(f"{title}\n\nSource: {agency}\n\n{body}\n" for title, agency, body in items)
