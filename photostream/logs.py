"""One logging set-up for every service: plain text by default, one JSON object per line for collectors.

``setup_logging(service)`` gives the root logger a single handler on standard error with the
format ``LOG_FORMAT`` asks for, at ``LOG_LEVEL``. Lines about one upload carry its
``upload_id`` and ``photographer_id`` without passing them to every call: code that handles an
upload enters ``upload_context(...)``, and the handler's filter copies the ids onto each record
logged inside it. The ids live in a ``contextvars`` variable, so asyncio tasks started inside
the block inherit them; threads of ``loop.run_in_executor`` do not (``asyncio.to_thread`` does),
so a line logged on an executor thread may lack them.

A JSON line holds ``time`` (ISO 8601, UTC), ``level``, ``service``, ``logger``, ``message``, the
ids when known and ``error`` (the traceback) when there is one, and nothing else: a record's
arguments and extras never reach the line as fields of their own, so what a message leaves out
(the access log's redacted query strings) stays out.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

from photostream.config import LogSettings

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The root handler setup_logging installs, found again by announce() and replaced by a second set-up.
HANDLER_NAME = "photostream"
CONTEXT_FIELDS = ("upload_id", "photographer_id")


@dataclass(frozen=True, slots=True)
class _UploadIds:
    upload_id: str | None = None
    photographer_id: str | None = None


_NO_IDS = _UploadIds()  # frozen: one shared default is safe
_upload_ids: ContextVar[_UploadIds] = ContextVar("photostream_upload_ids", default=_NO_IDS)


@contextmanager
def upload_context(*, upload_id: object = None, photographer_id: str | None = None) -> Iterator[None]:
    """Tag every line logged inside the block (and in tasks started there) with these ids.

    An id left out keeps the value of an enclosing block, so a request may name the
    photographer first and each of its files add an upload id.
    """
    outer = _upload_ids.get()
    token = _upload_ids.set(
        _UploadIds(
            upload_id=str(upload_id) if upload_id is not None else outer.upload_id,
            photographer_id=photographer_id if photographer_id is not None else outer.photographer_id,
        )
    )
    try:
        yield
    finally:
        _upload_ids.reset(token)


class UploadContextFilter(logging.Filter):
    """Copies the ids of the current ``upload_context`` onto each record (ids passed in ``extra`` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``upload_id`` and ``photographer_id`` where known; never drops a record."""
        ids = _upload_ids.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(ids, name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring for its fields)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (ASCII only, so any byte a message holds survives the stream)."""
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


def make_handler(service: str, settings: LogSettings) -> logging.Handler:
    """The handler every service logs through: standard error, the chosen format, the upload ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter(service) if settings.format == "json" else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(UploadContextFilter())
    return handler


def setup_logging(service: str, settings: LogSettings | None = None) -> LogSettings:
    """Make the root logger write through one handler of ``service``, replacing any it had.

    Args:
        service: Names the process in JSON lines: ``gateway``, ``worker``, ``sinks``, ``run``.
        settings: ``LOG_FORMAT`` and ``LOG_LEVEL``; read from the environment when not given.

    Returns:
        The settings used, for frameworks that take a log level of their own (Faust).
    """
    settings = settings or LogSettings()
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        if old.name == HANDLER_NAME:
            old.close()
    root.addHandler(make_handler(service, settings))
    root.setLevel(settings.level)
    return settings


def announce(logger: logging.Logger, message: str) -> None:
    """Say ``message`` whatever the log level: a line that supervisors and tests wait for.

    As plain text it is printed alone on standard output, as before there was a log format;
    with ``LOG_FORMAT=json`` it is a JSON line at INFO like any other.
    """
    handler = next((h for h in logging.getLogger().handlers if h.name == HANDLER_NAME), None)
    if handler is None or not isinstance(handler.formatter, JsonFormatter):
        print(message, flush=True)
        return
    record = logger.makeRecord(logger.name, logging.INFO, "(announce)", 0, message, (), None)
    handler.handle(record)
    handler.flush()
