"""Structured logs: one event per line, as JSON or as `event key=value` text.

Never pass params, tokens or payloads as fields: logs are not redacted, the audit log is.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one JSON line."""
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """`time level event key=value ...`, readable in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one text line."""
        fields = " ".join(
            f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _RESERVED
        )
        line = f"{self.formatTime(record)} {record.levelname.lower():7} {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(fmt: str = "text", level: str = "info", **always: Any) -> None:
    """Send all `signoff` logs to stderr in the chosen format, each line with `always`'s
    fields (e.g. worker=2 under `serve --workers`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if always:

        def stamp(record: logging.LogRecord) -> bool:
            for key, value in always.items():
                setattr(record, key, value)
            return True

        handler.addFilter(stamp)
    root = logging.getLogger("signoff")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra=fields)
