"""Log formatting: one line per event, as `key=value` text or as JSON objects.

Modules log through their own `logging` loggers. A record may carry structured facts in
`extra=facts(...)`; the text format appends them as `key=value` pairs after the message, the
JSON format makes them keys of the line's object, so a log shipper needs no parsing rules.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_FACTS = "newswire_facts"
"""The LogRecord attribute that holds a record's structured facts."""


def facts(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call: the event's facts, rendered as key=value or JSON keys."""
    return {_FACTS: values}


def record_facts(record: logging.LogRecord) -> Mapping[str, Any]:
    """The structured facts a record carries (empty for a plain message)."""
    found = getattr(record, _FACTS, None)
    return found if isinstance(found, Mapping) else {}


def format_value(value: Any) -> str:
    """One value of a key=value pair: bare when unambiguous, else a JSON string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = str(value)
    # Quote what a reader would split wrongly: spaces, quotes, `=`, or nothing at all.
    if not text or any(c.isspace() or c in '"=\\' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`aggregate: <level>: <message> key=value ...`, the format a person reads on stderr."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        pairs = " ".join(f"{k}={format_value(v)}" for k, v in record_facts(record).items())
        text = f"{message} {pairs}" if message and pairs else message or pairs
        line = f"aggregate: {record.levelname.lower()}: {text}"
        if record.exc_info:
            # Only debug records carry tracebacks (-vv): otherwise a failure stays one line.
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's facts."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_facts(record).items():
            # Facts never overwrite the envelope: a fact named like it gets a suffix.
            line[key if key not in line else f"{key}_"] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: int, log_format: LogFormat = "text") -> None:
    """Send every log record at `level` or above to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
