"""pipeline.logs: JSON lines (or console text) on stderr for structlog and stdlib loggers alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pipeline.logs import configure_logging, get_logger


@pytest.fixture()
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("kafka", "faust")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


def _capture() -> io.StringIO:
    stream = io.StringIO()
    for handler in logging.getLogger().handlers:
        handler.setStream(stream)  # type: ignore[attr-defined]
    return stream


@pytest.mark.usefixtures("root_restored")
def test_json_lines_carry_the_event_level_logger_time_and_keys() -> None:
    configure_logging("info", "json")
    stream = _capture()
    get_logger("test.logs").info("feed polled", feed_url="https://f.example/rss", took_ms=12)
    logging.getLogger("test.stdlib").warning("from the standard library")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "feed polled" and first["level"] == "info" and first["logger"] == "test.logs"
    assert first["feed_url"] == "https://f.example/rss" and first["took_ms"] == 12 and first["timestamp"]
    assert second["event"] == "from the standard library" and second["level"] == "warning"


@pytest.mark.usefixtures("root_restored")
def test_console_format_and_levels() -> None:
    configure_logging("warning", "console")
    stream = _capture()
    get_logger("test.logs").info("not shown")
    get_logger("test.logs").warning("shown", stage="clean")
    out = stream.getvalue()
    assert "not shown" not in out and "shown" in out and "stage=clean" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


@pytest.mark.usefixtures("root_restored")
def test_chatty_client_libraries_are_held_at_warning() -> None:
    configure_logging("debug", "json")
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("kafka").isEnabledFor(logging.INFO)
    assert logging.getLogger("faust").isEnabledFor(logging.WARNING)
