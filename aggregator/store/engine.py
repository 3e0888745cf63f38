"""The engine under every part of the store: connecting, transactions, settings, and the
small SQL helpers the parts share."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.errors import StoreError
from aggregator.store.schema import meta, migrate, schema_version

log = logging.getLogger(__name__)

CHUNK = 500
"""Rows per IN (...) list: well under SQLite's variable limit and PostgreSQL's comfort."""


class SqlBase:
    """A connection pool to one store, migrated on opening."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = self._connect(url)
        try:
            with self._engine.begin() as conn:
                migrate(conn, safe_url(url))
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise StoreError(f"{safe_url(url)}: cannot open the store: {reason(exc)}") from None

    @staticmethod
    def _connect(url: str) -> Engine:
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{path.parent}: cannot create the state directory: "
                                 f"{exc.strerror}") from None
            engine = sa.create_engine(url, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"{safe_url(url)}: unusable store URL: {exc}") from None

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"{safe_url(self.url)}: {reason(exc)}") from None

    def schema_version(self) -> int:
        """The schema version the store is at."""
        with self._tx() as conn:
            return int(conn.execute(sa.select(schema_version.c.version)).scalar_one())

    # -- meta -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored setting, or None."""
        with self._tx() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
            return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self._tx() as conn:
            set_meta_row(conn, key, value)

    def generation(self) -> int:
        """A counter that grows whenever items or stories change: publish skips when equal."""
        value = self.get_meta("generation")
        return int(value) if value else 0



def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets a reader (explain, a server) look while a run writes; NORMAL is durable
    # enough with WAL and much faster than FULL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A 64 MB page cache keeps the index inserts of a large first run in memory.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many plain rows through the driver's executemany: for the hundreds of
    thousands of index rows of a large first run, SQLAlchemy's per-row work would dominate.
    Only for columns whose values need no conversion (ints, strings, None)."""
    if not rows:
        return
    placeholder = {"qmark": "?", "numeric": ":{}", "named": ":c{}",
                   "format": "%s", "pyformat": "%s"}[conn.dialect.paramstyle]
    marks = ", ".join(placeholder.format(i + 1) for i in range(len(columns)))
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    if conn.dialect.paramstyle == "named":
        conn.exec_driver_sql(statement, [{f"c{i + 1}": v for i, v in enumerate(row)}
                                         for row in rows])
    else:
        conn.exec_driver_sql(statement, list(rows))


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def reason(exc: sa.exc.SQLAlchemyError) -> str:
    origin = getattr(exc, "orig", None)
    return str(origin or exc).strip().splitlines()[0]


def set_meta_row(conn: Connection, key: str, value: str) -> None:
    updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
    if updated.rowcount == 0:
        conn.execute(meta.insert().values(key=key, value=value))


def bump_generation(conn: Connection) -> int:
    current = conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation")).scalar()
    new = (int(current) if current else 0) + 1
    set_meta_row(conn, "generation", str(new))
    return new


def chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


