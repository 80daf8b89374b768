"""Log set-up: the libraries' stdlib records come out as the daemon's own JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator

import pytest
import structlog

from cti_bridge.config.model import LoggingConfig
from cti_bridge.logs import configure_logging


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """configure_logging in JSON mode on a buffer; the process's logging is put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=stream)
    try:
        yield stream
    finally:
        logging.captureWarnings(False)
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict]:
    """Every line must be one JSON object: a plain text line fails here."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_asyncios_own_slow_callback_warning_is_a_json_line(json_log):
    loop = asyncio.new_event_loop()
    try:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.01
        loop.call_soon(time.sleep, 0.05)  # blocks the loop: asyncio's debug mode says so
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    [line] = [entry for entry in lines(json_log) if entry.get("logger") == "asyncio"]
    assert line["level"] == "warning" and line["event"].startswith("Executing <Handle sleep")
    assert "took" in line["event"] and line["timestamp"].endswith("Z")


def test_a_library_warning_is_masked_and_carries_the_bound_call(json_log):
    # As aiomqtt logs it (its logger is "mqtt"), with a number in the text and a call bound.
    with structlog.contextvars.bound_contextvars(call="main/1.1"):
        logging.getLogger("mqtt").warning("There are %d pending publish calls.", 12)
        logging.getLogger("uvicorn.error").warning("client +8613800138000 sent an invalid request")
    structlog.get_logger("cti").info("ticket.created", caller="+8613800138000")
    pending, invalid, own = lines(json_log)
    assert pending == {
        "event": "There are 12 pending publish calls.",
        "logger": "mqtt",
        "level": "warning",
        "timestamp": pending["timestamp"],
        "call": "main/1.1",
    }
    assert invalid["event"] == "client +861*******000 sent an invalid request"
    assert own["caller"] == "+861*******000" and own["event"] == "ticket.created"


def test_a_library_exception_keeps_its_traceback_inside_the_json(json_log):
    try:
        raise ConnectionResetError("broker went away")
    except ConnectionResetError:
        logging.getLogger("paho").exception("network loop failed")
    [line] = lines(json_log)
    assert line["level"] == "error" and line["event"] == "network loop failed"
    assert "ConnectionResetError: broker went away" in line["exception"]


def test_library_info_stays_out_and_python_warnings_come_in(json_log):
    logging.getLogger("uvicorn.error").info("Started server process")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    [line] = lines(json_log)
    assert line["logger"] == "py.warnings" and "DeprecationWarning: old API" in line["event"]
