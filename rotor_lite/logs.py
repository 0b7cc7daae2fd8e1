"""The server's log lines: one record is one line of text or one JSON object, with its `extra=` fields.

Code logs what happened as the message and what it happened to as fields:

    log.warning("job attempt failed", extra={"job_id": job.id, "queue": queue.name, "status": 503})

renders as

    2026-05-20T10:00:00.123Z WARNING rotor_lite.dispatcher: job attempt failed job_id=job_… queue=outreach status=503
    {"time":"2026-05-20T10:00:00.123Z","level":"WARNING","logger":"rotor_lite.dispatcher","message":"job attempt failed","job_id":"job_…","queue":"outreach","status":503}

Fields hold ids, names, states, statuses and errors already scrubbed of secrets: never an API key,
a secret value, a query string or a payload.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Any, Literal

import msgspec

from rotor_lite.clock import iso

__all__ = ["LogFormat", "JsonFormatter", "TextFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]
_NEEDS_QUOTES = re.compile(r'[\s"=]')

# Everything a LogRecord carries by itself (and uvicorn's colored copy of its message); the rest of
# its attributes came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record."""
    return {name: value for name, value in vars(record).items() if name not in _RECORD_ATTRIBUTES}


def _time(record: logging.LogRecord) -> str:
    return iso(int(record.created * 1000))


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message> key=value …`; a value with spaces or quotes is JSON-quoted, None is left out."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_time(record), record.levelname, f"{record.name}:", record.getMessage()]
        for name, value in vars(record).items():  # one pass: this runs for every request
            if value is not None and name not in _RECORD_ATTRIBUTES:
                parts.append(f"{name}={_text_value(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return msgspec.json.encode(text).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the fields, and `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _time(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage(), **_fields(record)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


_FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


def configure_logging(level: str, log_format: LogFormat, stream: IO[str] | None = None) -> None:
    """Send every logger's records (uvicorn's too) through one handler on stderr in `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_FORMATTERS[log_format]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # No formatter here prints the caller's file and line, thread or process: skip collecting them
    # for every record (the request log writes one per request). See "Optimization" in the logging docs.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
