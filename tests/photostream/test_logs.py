"""The logging set-up: plain text by default, JSON lines with the upload's ids when asked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from photostream.config import LogSettings, environment_variables
from photostream.logs import PLAIN_FORMAT, announce, make_handler, setup_logging, upload_context


@pytest.fixture
def capture():
    """A logger writing through the service handler into a buffer, as setup_logging would install it."""
    handlers: list[logging.Handler] = []

    def make(fmt: str = "json", service: str = "gateway") -> tuple[logging.Logger, io.StringIO]:
        stream = io.StringIO()
        handler = make_handler(service, LogSettings(format=fmt))
        handler.setStream(stream)  # type: ignore[attr-defined]
        logger = logging.getLogger(f"tests.logs.{uuid.uuid4().hex}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        handlers.append(handler)
        return logger, stream

    yield make
    for handler in handlers:
        handler.close()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fields(capture):
    logger, stream = capture()
    logger.info("hello %s", "world")
    (line,) = lines(stream)
    assert set(line) == {"time", "level", "service", "logger", "message"}
    assert line["level"] == "INFO"
    assert line["service"] == "gateway"
    assert line["logger"] == logger.name
    assert line["message"] == "hello world"
    stamp = datetime.fromisoformat(line["time"])
    assert stamp.utcoffset() == timedelta(0)  # UTC, ISO 8601
    assert abs(datetime.now(stamp.tzinfo) - stamp) < timedelta(minutes=1)


def test_ids_are_on_the_lines_inside_the_context_only(capture):
    logger, stream = capture()
    upload_id = uuid.uuid4()
    logger.info("before")
    with upload_context(photographer_id="ph-1"):
        logger.info("request")
        with upload_context(upload_id=upload_id):
            logger.warning("file")
        logger.info("request again")
    logger.info("after")
    before, request, file, again, after = lines(stream)
    assert "upload_id" not in before
    assert "photographer_id" not in before
    assert request["photographer_id"] == "ph-1"
    assert "upload_id" not in request
    assert file["upload_id"] == str(upload_id)
    assert file["photographer_id"] == "ph-1"  # kept from the enclosing block
    assert "upload_id" not in again
    assert "upload_id" not in after
    assert "photographer_id" not in after


def test_ids_passed_as_extra_win_over_the_context(capture):
    logger, stream = capture()
    with upload_context(upload_id="from-context", photographer_id="ph-1"):
        logger.info("explicit", extra={"upload_id": "from-extra"})
    (line,) = lines(stream)
    assert line["upload_id"] == "from-extra"
    assert line["photographer_id"] == "ph-1"


async def test_tasks_started_inside_the_context_carry_the_ids(capture):
    logger, stream = capture()

    async def work(n: int) -> None:
        await asyncio.sleep(0)
        logger.info("step %d", n)

    async def one(upload_id: str) -> None:
        with upload_context(upload_id=upload_id, photographer_id="ph-2"):
            await asyncio.gather(work(1), asyncio.create_task(work(2)))

    await asyncio.gather(one("a"), one("b"))
    logged = lines(stream)
    assert len(logged) == 4
    assert sorted(line["upload_id"] for line in logged) == ["a", "a", "b", "b"]
    assert {line["photographer_id"] for line in logged} == {"ph-2"}


def test_an_exception_is_in_the_line(capture):
    logger, stream = capture()
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("it failed")
    (line,) = lines(stream)  # still one line: the traceback is escaped inside the JSON string
    assert line["level"] == "ERROR"
    assert line["message"] == "it failed"
    assert "Traceback" in line["error"]
    assert "RuntimeError: boom" in line["error"]


def test_any_message_stays_one_ascii_line(capture):
    logger, stream = capture()
    logger.info("photo\n\u00e9t\u00e9 \udcff %s", {"a": b"\x00"})
    text = stream.getvalue()
    assert text.isascii()
    assert text.count("\n") == 1
    assert lines(stream)[0]["message"].startswith("photo\n\u00e9t\u00e9")


def test_plain_text_is_the_default_and_unchanged(capture, monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    settings = LogSettings()
    assert (settings.format, settings.level) == ("plain", "INFO")
    logger, stream = capture(settings.format)
    with upload_context(upload_id="u-1", photographer_id="ph-1"):
        logger.info("hello %s", "world")
    handler = logger.handlers[0]
    assert handler.formatter is not None
    assert handler.formatter._fmt == PLAIN_FORMAT
    assert PLAIN_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the format every service had
    assert stream.getvalue().endswith(f" INFO {logger.name}: hello world\n")


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    assert LogSettings() == LogSettings(format="json", level="WARNING")
    assert {"LOG_FORMAT", "LOG_LEVEL"} <= environment_variables()
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="format"):
        LogSettings()
    with pytest.raises(ValidationError, match="LOG_LEVEL"):
        LogSettings(format="plain", level="loud")


@pytest.fixture
def root_logging():
    """Restore the root logger after a test that sets it up as a service does."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_setup_leaves_one_handler_at_the_level(root_logging, capsys):
    setup_logging("sinks", LogSettings(format="json", level="WARNING"))
    setup_logging("sinks", LogSettings(format="json", level="WARNING"))  # a second set-up replaces the first
    assert len(root_logging.handlers) == 1
    logger = logging.getLogger("tests.logs.root")
    logger.info("not shown")
    logger.warning("shown")
    announce(logger, "sinks running")  # said whatever the level
    err = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in err] == ["shown", "sinks running"]
    assert {json.loads(line)["service"] for line in err} == {"sinks"}


def test_announce_prints_plain_text_alone(root_logging, capsys):
    setup_logging("gateway", LogSettings(format="plain", level="ERROR"))
    announce(logging.getLogger("tests.logs.root"), "gateway listening on http://127.0.0.1:1")
    assert capsys.readouterr().out == "gateway listening on http://127.0.0.1:1\n"
