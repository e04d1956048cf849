"""Structured JSON logs: one object per line, and no secret ever reaches one."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from garrison.gateway.logs import configure_logging, get_logger, mask_secrets, uvicorn_log_config

KEY = "gar_Zq8xY2mN4pQ7rS1tU5vW9"
TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    names = ("garrison", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level,
                 logging.getLogger(n).propagate, logging.getLogger(n).disabled) for n in names}  # fmt: skip
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"key={KEY}", KEY),
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        ("Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==", "dXNlcjpwYXNzd29yZDEyMw=="),
        ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
        ("postgresql://app:hunter2hunter2@db/prod", "hunter2hunter2"),
        ('{"api_token": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}', "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ],
)
def test_mask_secrets_hides_every_kind(text: str, secret: str) -> None:
    masked = mask_secrets(text)
    assert secret not in masked
    assert "chars)" in masked


@pytest.mark.parametrize("text", ["", "GET /v1/chat/completions 200", "a plain sentence about tokens"])
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


def test_log_lines_are_json_objects_with_masked_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    log = get_logger("garrison.gateway.test")
    log.info("auth.failed", header=f"Bearer {TOKEN}", nested={"keys": [KEY]}, status=401, event="clash")
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        log.error("boom", exc_info=True)
    lines = capsys.readouterr().err.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert (first["level"], first["event"], first["logger"]) == (
        "info",
        "auth.failed",
        "garrison.gateway.test",
    )
    assert first["status"] == 401
    assert first["field.event"] == "clash"  # a field never overwrites the envelope
    assert first["ts"].endswith("Z")
    assert KEY not in lines[0]
    assert TOKEN not in lines[0]
    assert second["level"] == "error"
    assert "ValueError" in second["exception"]
    assert KEY not in lines[1]


def test_level_filters_and_uvicorn_access_log_is_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning")
    get_logger("garrison.x").info("quiet")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    logging.getLogger("uvicorn.error").warning("Started server process")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["Started server process"]


def test_uvicorn_log_config_is_a_valid_dict_config(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(uvicorn_log_config("info"))
    logging.getLogger("uvicorn.error").info(f"token {KEY}")
    logging.getLogger("uvicorn.access").info("GET /")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert KEY not in lines[0]
    assert json.loads(lines[0])["logger"] == "uvicorn.error"


def test_an_unknown_level_is_a_config_error() -> None:
    from garrison.core.errors import ConfigError

    with pytest.raises(ConfigError, match="verbose"):
        configure_logging("verbose")
