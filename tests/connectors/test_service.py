"""The connector service around one refresh: a refresh that crashes (a bug, a broken parse pool) is recorded as
a failure of that feed and retried with backoff, like any feed error, never on the next tick of the loop."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import connectors.service as service
from connectors.feedlist import FeedSpec
from connectors.service import Connector
from pipeline.settings import load_settings


async def test_a_crashed_refresh_is_a_failure_with_a_next_check_time(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in a refresh")

    monkeypatch.setattr(service, "refresh_feed", crash)
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path), "NEWSFLOW_POLL_PARSE_PROCESSES": "0"})
    spec = FeedSpec(url="https://news.example.com/feed.xml", interval=60)
    connector = Connector(settings, specs=[spec])
    connector._fetcher, connector._publisher = object(), object()  # type: ignore[assignment]  # never reached
    before = datetime.now(UTC)

    first = await connector.refresh(spec)
    second = await connector.refresh(spec)

    state = connector.state(spec.url)
    assert first.status == second.status == "error" and first.kind == "internal"
    assert "bug in a refresh" in (state.last_error or "")
    assert state.error_count == 2 and state.last_error_kind == "internal"
    # Scheduled like a feed error: from the feed's interval, and backing off (equal jitter: the upper half).
    assert first.delay_s >= 30 and second.delay_s >= 60
    assert state.next_check_at is not None and state.next_check_at > before
    # And it was saved: a restarted connector does not retry it at once either.
    saved = Connector(settings, specs=[spec]).state(spec.url)
    assert saved.next_check_at == state.next_check_at and saved.error_count == 2
