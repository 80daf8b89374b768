"""structlog set-up: JSON lines (console on a terminal), contextvars, phone numbers masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from cti_bridge.config.model import LoggingConfig
from cti_bridge.phone import mask

_PHONE_KEYS = frozenset({"caller", "caller_number", "phone", "number", "callee", "customer_phone"})
_E164ISH = re.compile(r"\+\d{6,15}")


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return _E164ISH.sub(lambda m: mask(m.group()), value)
    return value


def mask_phone_numbers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask numbers under phone-ish keys, and anything that looks like +E.164 elsewhere."""
    for key, value in event_dict.items():
        if key in _PHONE_KEYS and isinstance(value, str) and value:
            event_dict[key] = mask(value)
        else:
            event_dict[key] = _mask_value(value)
    return event_dict


def configure_logging(config: LoggingConfig, stream: Any = None) -> None:
    """Configure structlog, and stdlib logging for the libraries, once, at start-up.

    Records of stdlib loggers (paho, aiomqtt, asyncio, uvicorn, Python warnings) go through
    structlog's ProcessorFormatter: the same timestamp, level, masking and renderer as the
    daemon's own lines, so a JSON log stays one JSON object per line whoever wrote it.
    """
    stream = stream or sys.stderr
    level = getattr(logging, config.level.upper())
    console = config.format == "console" or (config.format == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if config.mask_numbers:
        shared.append(mask_phone_numbers)
    tracebacks = structlog.processors.format_exc_info if not console else _identity
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # A library's record carries no event name of its own: its logger's name says who spoke.
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            *shared,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, tracebacks, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    # Libraries chat at INFO (uvicorn's start-up lines, paho's connects): only their warnings
    # and errors are the daemon's business.
    root.setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)  # a DeprecationWarning printed by Python is a log line too


def _identity(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event_dict
