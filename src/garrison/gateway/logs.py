"""Structured JSON logs for the gateway, with every string masked so no secret reaches a log.

One JSON object per line on stderr: ``{"ts": ..., "level": ..., "event": ..., "logger": ..., **fields}``.
Library code logs through :func:`get_logger`::

    log = get_logger("garrison.gateway")
    log.info("upstream.error", route="chat", kind="timeout")

Uvicorn's own loggers are routed through the same formatter, and its access log is replaced by the
gateway's: start uvicorn with ``log_config=uvicorn_log_config(level)`` and ``access_log=False`` (or
call :func:`configure_logging` and pass ``log_config=None``); the gateway then writes one
``http.request`` line per request itself when it wants an access log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

from garrison.core.masking import mask
from garrison.recognizers.pii_find import lowered
from garrison.recognizers.pii_secrets import scan_secrets

#: Garrison API keys (``gar_`` and a random tail), bearer and basic credentials in headers or text.
_EXTRA_SECRETS = re.compile(
    r"(?P<gar>(?<![A-Za-z0-9_])gar_[A-Za-z0-9_\-]{8,})"
    r"|(?i:\b(?:bearer|basic|token)\s+)(?P<bearer>[A-Za-z0-9._~+/\-]{8,}=*)"
)
#: Strings shorter than this hold no secret any recognizer reports.
_MIN_SECRET = 8
_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                  "error": logging.ERROR, "critical": logging.CRITICAL}  # fmt: skip
_RESERVED = frozenset({"ts", "level", "event", "logger"})


def mask_secrets(text: str) -> str:
    """``text`` with every secret the recognizers find replaced by its masked form.

    Covers Garrison API keys (``gar_...``), bearer/basic credentials and every format of
    :mod:`garrison.recognizers.pii_secrets` (provider keys, JWTs, private keys, passwords in URLs,
    high-entropy values assigned to key-like names). Text without a secret is returned as is.
    """
    if len(text) < _MIN_SECRET:
        return text
    spans: list[tuple[int, int]] = []
    for m in _EXTRA_SECRETS.finditer(text):
        group = "gar" if m.group("gar") is not None else "bearer"
        spans.append(m.span(group))
    spans.extend((found.start, found.end) for found in scan_secrets(text, lowered(text)))
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    at = 0
    for start, end in spans:
        if start < at:  # overlaps a span already masked
            continue
        parts.append(text[at:start])
        parts.append(mask(text[start:end]))
        at = end
    parts.append(text[at:])
    return "".join(parts)


def mask_value(value: Any) -> Any:
    """A JSON-like value with :func:`mask_secrets` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, Mapping):
        return {mask_secrets(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_secrets(str(value))


class JsonFormatter(logging.Formatter):
    """Formats a record as one masked JSON object; ``extra={"fields": {...}}`` adds fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": mask_secrets(record.getMessage()),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                name = str(key)
                entry[f"field.{name}" if name in _RESERVED else name] = mask_value(value)
        if record.exc_info:
            entry["exception"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class EventLogger:
    """A logger whose calls take an event name and keyword fields: ``log.info("x.y", a=1)``."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    @property
    def logger(self) -> logging.Logger:
        """The standard-library logger underneath."""
        return self._logger

    def is_enabled(self, level: int) -> bool:
        """Whether a record at ``level`` would be written (skip building costly fields if not)."""
        return self._logger.isEnabledFor(level)

    def log(self, level: int, event: str, /, exc_info: bool = False, **fields: Any) -> None:
        """Write ``event`` with ``fields`` at ``level``."""
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)

    def debug(self, event: str, /, **fields: Any) -> None:
        """Log at debug level."""
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        """Log at info level."""
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        """Log at warning level."""
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, /, exc_info: bool = False, **fields: Any) -> None:
        """Log at error level, with the current exception's traceback when ``exc_info``."""
        self.log(logging.ERROR, event, exc_info=exc_info, **fields)


def get_logger(name: str) -> EventLogger:
    """The structured logger called ``name`` (use ``garrison.gateway...`` names)."""
    return EventLogger(logging.getLogger(name))


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        from garrison.core.errors import ConfigError

        raise ConfigError(
            f"log level {level!r} is not one of {', '.join(_LEVELS)}", hint="use --log-level info"
        ) from None


def configure_logging(level: str | int = "info", *, json: bool = True) -> logging.Handler:
    """Send ``garrison``'s and uvicorn's loggers to stderr, one masked JSON object per line.

    Replaces handlers this function installed before (it can be called again). With ``json=False``
    the lines are plain text, still masked. Uvicorn's access logger is silenced: the gateway writes
    its own masked ``http.request`` line instead. Returns the handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else _MaskingTextFormatter())
    handler.set_name("garrison-json")
    resolved = _level(level)
    for name in ("garrison", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if old.get_name() == "garrison-json" or name.startswith("uvicorn"):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(resolved)
        logger.propagate = False
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    return handler


def uvicorn_log_config(level: str | int = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: JSON, masked, no access log.

    Each worker process applies it at start, so forked or spawned workers log the same way.
    """
    name = logging.getLevelName(_level(level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "garrison": {"handlers": ["stderr"], "level": name, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": name, "propagate": False},
            "uvicorn.error": {"handlers": [], "level": name, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }


class _MaskingTextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping) and fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return mask_secrets(text)
