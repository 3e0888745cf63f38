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
                # Two nodes starting on an empty database must not both create the tables.
                advisory_lock(conn, "migrate")
                migrate(conn, safe_url(url))
                conn.execute(dialect_insert(conn, meta).values(key="generation", value="0")
                             .on_conflict_do_nothing(index_elements=[meta.c.key]))
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise StoreError(f"{safe_url(url)}: cannot open the store: {reason(exc)}"
                             f"{damage_hint(url, exc)}") from None

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

    @contextmanager
    def placement_lock(self) -> Iterator[None]:
        """Hold the lock under which new items are placed into stories, so two nodes never
        found two stories for one event. PostgreSQL: a session advisory lock, released by
        the server if the process dies. SQLite: nothing to do (one process per file)."""
        if self._engine.dialect.name != "postgresql":
            yield
            return
        name = {"name": "newswire:placement:"}
        try:
            conn = self._engine.connect()
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:name || current_schema()))"),
                         name)
            conn.commit()
        except sa.exc.OperationalError as exc:
            raise StoreError(f"{safe_url(self.url)}: {reason(exc)}") from None
        try:
            yield
        finally:
            try:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(hashtext(:name || current_schema()))"),
                    name)
                conn.commit()
            finally:
                conn.close()

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
    Values are converted as the columns' types convert them (dates, flags)."""
    if not rows:
        return
    statement = (f"INSERT INTO {_quoted(conn, table.name)} ({_column_list(conn, columns)}) "
                 f"VALUES ({', '.join(_markers(conn, len(columns)))})")
    _execute_many(conn, statement, _converted(conn, table, columns, rows))


def bulk_update(
    conn: Connection, table: sa.Table, columns: Sequence[str], key: str,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Set `columns` of many rows, each found by `key`: every row holds the new values in
    the order of `columns`, then its key. The driver's executemany, as for `bulk_insert`."""
    if not rows:
        return
    *marks, key_mark = _markers(conn, len(columns) + 1)
    assignments = ", ".join(f"{_quoted(conn, name)} = {mark}"
                            for name, mark in zip(columns, marks, strict=True))
    statement = (f"UPDATE {_quoted(conn, table.name)} SET {assignments} "
                 f"WHERE {_quoted(conn, key)} = {key_mark}")
    _execute_many(conn, statement, _converted(conn, table, (*columns, key), rows))


_ROWS_PER_STATEMENT = 400
"""Rows per multi-row INSERT: a few thousand parameters, under SQLite's and PostgreSQL's
limits for the widest table."""


def insert_new(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
    key: str,
) -> list[Any]:
    """Insert the rows whose `key` is not taken yet; return the keys actually inserted.

    `insert_ignoring_conflicts` for many wide rows: multi-row VALUES built once per size,
    values converted by the columns' types, without SQLAlchemy's per-row work."""
    if not rows:
        return []
    head = f"INSERT INTO {_quoted(conn, table.name)} ({_column_list(conn, columns)}) VALUES "
    tail = f" ON CONFLICT ({_quoted(conn, key)}) DO NOTHING RETURNING {_quoted(conn, key)}"
    converted = _converted(conn, table, columns, rows)
    statements: dict[int, str] = {}  # by rows per statement: every batch but the last is full
    inserted: list[Any] = []
    for start in range(0, len(converted), _ROWS_PER_STATEMENT):
        batch = converted[start : start + _ROWS_PER_STATEMENT]
        if len(batch) not in statements:
            statements[len(batch)] = head + ", ".join(
                f"({', '.join(_markers(conn, len(columns), first=n * len(columns)))})"
                for n in range(len(batch))) + tail
        flat = tuple(value for row in batch for value in row)
        result = conn.exec_driver_sql(statements[len(batch)], _driver_params(conn, flat))
        inserted.extend(result.scalars())
    return inserted


def _quoted(conn: Connection, name: str) -> str:
    quoted: str = conn.dialect.identifier_preparer.quote(name)
    return quoted


def _column_list(conn: Connection, columns: Sequence[str]) -> str:
    return ", ".join(_quoted(conn, name) for name in columns)


def _markers(conn: Connection, count: int, first: int = 0) -> list[str]:
    """`count` parameter markers in the driver's style, numbered from `first` + 1."""
    placeholder = {"qmark": "?", "numeric": ":{}", "named": ":c{}",
                   "format": "%s", "pyformat": "%s"}[conn.dialect.paramstyle]
    return [placeholder.format(first + i + 1) for i in range(count)]


def _driver_params(conn: Connection, values: tuple[Any, ...]) -> tuple[Any, ...] | dict[str, Any]:
    """One statement's values as the driver takes them (named drivers: by the markers' names)."""
    if conn.dialect.paramstyle == "named":
        return {f"c{i + 1}": value for i, value in enumerate(values)}
    return values


def _converted(conn: Connection, table: sa.Table, columns: Sequence[str],
               rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
    """The rows with each value as the column's type binds it (as SQLAlchemy would); the
    values of converted columns are hashable (dates, flags)."""
    dialect = conn.dialect
    processors = [(index, processor) for index, name in enumerate(columns)
                  for processor in (table.c[name].type.dialect_impl(dialect)
                                    .bind_processor(dialect),)
                  if processor is not None]
    if not processors:
        return rows
    # Rows share values (a run's first-seen time, a day's dates): each is converted once.
    done: list[dict[Any, Any]] = [{} for _ in processors]
    result: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for (index, processor), seen in zip(processors, done, strict=True):
            value = values[index]
            if value in seen:
                values[index] = seen[value]
            else:
                values[index] = seen[value] = processor(value)
        result.append(tuple(values))
    return result


def _execute_many(conn: Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if conn.dialect.paramstyle == "named":
        conn.exec_driver_sql(statement, [_driver_params(conn, row) for row in rows])
    else:
        conn.exec_driver_sql(statement, list(rows))


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def damage_hint(url: str, exc: sa.exc.SQLAlchemyError) -> str:
    """What to do about a damaged SQLite file (nothing to add for other failures)."""
    if not url.startswith("sqlite:///"):
        return ""
    why = reason(exc).lower()
    if "not a database" not in why and "malformed" not in why:
        return ""
    path = url[len("sqlite:///") :]
    return (f"; the file is damaged: move it aside (mv {path} {path}.damaged) and run again."
            " A new store is made; stories keep their ids (they follow from the items), but"
            " items first seen before get new first-seen dates when undated")


def reason(exc: sa.exc.SQLAlchemyError) -> str:
    origin = getattr(exc, "orig", None)
    return str(origin or exc).strip().splitlines()[0]


def set_meta_row(conn: Connection, key: str, value: str) -> None:
    """Insert or replace a setting, safe when two nodes write it at once."""
    statement = dialect_insert(conn, meta).values(key=key, value=value)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[meta.c.key], set_={"value": statement.excluded.value}))


def bump_generation(conn: Connection) -> int:
    """Add one to the change counter, atomically (two nodes' changes are two steps); the
    row exists from the store's opening on."""
    value = conn.execute(meta.update().where(meta.c.key == "generation").values(
        value=sa.cast(sa.cast(meta.c.value, sa.BigInteger) + 1, sa.Text),
    ).returning(meta.c.value)).scalar_one()
    return int(value)


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT with the dialect's ON CONFLICT clauses (SQLite and PostgreSQL have both)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_ignoring_conflicts(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], key: str
) -> list[Any]:
    """Insert the rows whose `key` is not taken yet; return the keys actually inserted."""
    if not rows:
        return []
    statement = (dialect_insert(conn, table).on_conflict_do_nothing(index_elements=[key])
                 .returning(table.c[key]))
    return list(conn.execute(statement, list(rows)).scalars())


def advisory_lock(conn: Connection, name: str) -> None:
    """On PostgreSQL, wait for the named lock, held until `conn`'s transaction ends.

    Keyed by the schema too, so stores in different schemas of one database never wait on
    each other. SQLite needs none: a state file has one process (the CLI locks it).
    """
    if conn.dialect.name != "postgresql":
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name || current_schema()))"),
                 {"name": f"newswire:{name}:"})


def chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


