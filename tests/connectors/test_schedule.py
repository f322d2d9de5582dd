"""Adaptive intervals, feed hints and error backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from connectors.schedule import backoff_delay, next_interval
from pipeline.settings import PollSettings

POLL = PollSettings(interval_s=900, min_interval_s=60, max_interval_s=6 * 3600, max_backoff_s=24 * 3600)
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def every(minutes: float, n: int = 10) -> list[datetime]:
    return [T0 + timedelta(minutes=minutes * i) for i in range(n)]


@pytest.mark.parametrize(("published", "kwargs", "expected"), [
    ([], {}, 900),  # no dates: the configured default
    ([], {"base_s": 1200}, 1200),  # the feed list entry's interval
    (every(60), {}, 1800),  # hourly feed: every 30 min
    (every(1), {}, 60),  # a firehose: clamped to min_interval_s
    (every(7 * 24 * 60), {}, 6 * 3600),  # weekly: clamped to max_interval_s
    (every(60), {"ttl_s": 7200}, 7200),  # <ttl> asks for less often
    (every(60), {"update_period_s": 3 * 3600}, 3 * 3600),  # sy:updatePeriod
    (every(60), {"ttl_s": 10}, 1800),  # a hint never makes us poll more often
], ids=["default", "entry-interval", "hourly", "firehose", "weekly", "ttl", "sy-update", "small-ttl"])
def test_next_interval(published: list[datetime], kwargs: dict, expected: float) -> None:
    assert next_interval(POLL, published=published, **kwargs) == expected


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(POLL, n, rng=rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        full = min(900 * 2 ** (n - 1), POLL.max_backoff_s)
        assert full / 2 <= delay <= full
    assert max(delays) <= POLL.max_backoff_s
    assert backoff_delay(POLL, 10_000, rng=rng) <= POLL.max_backoff_s  # never infinite: the feed is retried


def test_retry_after_is_honoured_but_capped() -> None:
    assert backoff_delay(POLL, 1, retry_after_s=5000, rng=random.Random(1)) >= 5000
    assert backoff_delay(POLL, 1, retry_after_s=10**9, rng=random.Random(1)) == POLL.max_backoff_s
