"""The exception tree: callers catch `AggregatorError` and get a message fit for a user.

Every message names the thing at fault (file and line, URL, or config key) and the reason,
so the CLI can print it as it is, without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross from worker processes to the run: rebuild them with their
        # attributes, not by calling __init__ with the message alone.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[AggregatorError], args: tuple[Any, ...],
             attributes: dict[str, Any]) -> AggregatorError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(attributes)
    return error


class ConfigError(AggregatorError):
    """The configuration cannot be used: missing file, bad TOML, unknown key, wrong type."""

    def __init__(self, file: Path | str, key: str | None, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {reason}")


class SourceError(AggregatorError):
    """One source (a seed file, a feed URL) could not be read; the others still publish."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ParseError(SourceError):
    """A source's content is malformed; `line` is 1-based when the format has lines."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        super().__init__(f"{file}:{line}" if line else file, reason)


class FetchError(SourceError):
    """A live feed could not be fetched (network, HTTP status, size or time limits)."""

    def __init__(
        self, url: str, reason: str, *, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After on a 429 or 503), if it did."""
        super().__init__(url, reason)


class StoreError(AggregatorError):
    """The state store cannot be opened, migrated or written."""


class PublishError(AggregatorError):
    """An output file could not be written; earlier output stays as it was."""


class LockHeldError(AggregatorError):
    """Another aggregator process holds this lock (on an output directory or a SQLite
    state file)."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        super().__init__(f"{lock_path}: another aggregate run holds this lock")
