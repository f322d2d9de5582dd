"""The connector service around one refresh: a refresh that crashes (a bug, a broken parse pool) is recorded as
a failure of that feed and retried with backoff, like any feed error, never on the next tick of the loop."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
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


async def test_feeds_never_checked_are_not_starved_by_a_busy_host(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """One host, one refresh at a time, feeds that fall due again at once: every feed is still checked before any
    feed is checked a third time (a feed never checked is the most overdue), and a finished refresh frees its
    host's slot at once, not on the loop's next tick."""
    order: list[str] = []

    async def refresh(spec: FeedSpec, state: Any, **kwargs: Any) -> service.RefreshOutcome:
        order.append(spec.url)
        state.next_check_at = datetime.now(UTC)  # due again immediately
        await asyncio.sleep(0.001)
        if len(order) >= 60:
            stop.set()
        return service.RefreshOutcome(feed_url=spec.url, status="ok")

    monkeypatch.setattr(service, "refresh_feed", refresh)
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path), "NEWSFLOW_POLL_PARSE_PROCESSES": "0",
                                      "NEWSFLOW_POLL_PER_HOST": "1"})
    specs = [FeedSpec(url=f"https://news.example.com/feed{k}.xml", interval=60) for k in range(20)]
    connector = Connector(settings, specs=specs)
    connector.specs = specs  # what `async with` loads
    connector._fetcher = object()  # type: ignore[assignment]  # never reached
    connector._publisher = SimpleNamespace(topic="news.raw")  # type: ignore[assignment]  # only its name is read
    stop = asyncio.Event()

    started = time.perf_counter()
    await asyncio.wait_for(connector.run(stop), timeout=30)
    took = time.perf_counter() - started

    assert set(order[:20]) == {s.url for s in specs}  # each feed once before any feed twice
    assert len(order) >= 60
    # 60 refreshes one at a time: with a 0.2 s tick per refresh this took 12 s.
    assert took < 6, took
