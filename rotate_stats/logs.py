"""Log set-up for the CLI: text or JSON lines on stderr, each with the run id.

Library modules only log (``logging.getLogger("rotate_stats")``); this module,
used by ``cli`` alone, decides how lines look (issue 10, item 16):

* ``text``: ``2026-12-04 02:00:01,123 INFO rotate_stats [run 3f9c0a1b2c3d4e5f]: message``
* ``json``: one object per line with ``time`` (UTC, ISO 8601), ``level``,
  ``logger``, ``message``, ``run_id`` and whatever the call passed as
  ``extra=`` (``date``, ``state``, ``counts``, ...).

Every message, ``extra=`` string and traceback goes through ``mask_text``: no log
line carries a URL's password. Text lines show a message's control characters
escaped (``render.printable``): one record, one line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from .errors import mask_text
from .render import printable

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [run %(run_id)s]: %(message)s"

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "run_id",
}


class _RunContext(logging.Filter):
    """Stamps the run id on each record and masks passwords in its message."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with the message on one line: a newline, an escape or another
    control character in it (a breakdown key may hold any) is shown escaped, so
    no message can forge a log line or drive a terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return mask_text(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run_id and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = _masked(value)
        if record.exc_info:
            data["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(data, default=str, sort_keys=False)


def _masked(value: object) -> object:
    """An ``extra=`` value with every string in it (in lists and dicts too) masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    return value


def setup_logging(level: str, log_format: str, run_id: str) -> None:
    """Send the process's logs to this call's stderr, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RunContext(run_id))
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
