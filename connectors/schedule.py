"""When to check a feed next: adaptive interval, the feed's own hints, backoff with jitter on errors."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import datetime

from pipeline.backoff import backoff_delay as pipeline_backoff
from pipeline.settings import PollSettings

__all__ = ["backoff_delay", "next_interval"]

# How many of the newest items the publishing cadence is measured over.
_CADENCE_WINDOW = 10


def next_interval(
    poll: PollSettings,
    *,
    base_s: float | None = None,
    published: list[datetime] | None = None,
    ttl_s: float | None = None,
    update_period_s: float | None = None,
    cache_max_age_s: float | None = None,
) -> float:
    """Seconds until the next check of a feed that answered normally.

    1. Start from the feed's publishing cadence: half the median gap between its newest items, so a
       feed that posts hourly is checked about every 30 min. Without dates, the configured interval.
    2. Never ask more often than the feed says it changes: ``<ttl>``, ``sy:updatePeriod`` (RSS 1.0
       syndication module) and Cache-Control max-age raise the interval (Miniflux takes the largest too).
    3. Clamp between ``poll.min_interval_s`` and ``poll.max_interval_s``.
    """
    base = float(base_s or poll.interval_s)
    # Step 1.
    interval = base
    times = sorted((t for t in published or [] if t is not None), reverse=True)[:_CADENCE_WINDOW]
    if len(times) >= 2:
        gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(times)]
        gaps = [g for g in gaps if g > 0]
        if gaps:
            interval = statistics.median(gaps) / 2
    # Step 2.
    for hint in (ttl_s, update_period_s, cache_max_age_s):
        if hint:
            interval = max(interval, float(hint))
    # Step 3.
    return float(min(max(interval, poll.min_interval_s), poll.max_interval_s))


def backoff_delay(
    poll: PollSettings,
    error_count: int,
    *,
    retry_after_s: float | None = None,
    base_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after ``error_count`` consecutive failures: exponential, jittered, capped, never infinite.

    The delay doubles per failure from the feed's normal interval ("equal jitter": a random point in
    the upper half, so many feeds failing together do not retry in lockstep), is capped at
    ``poll.max_backoff_s``, and is at least the server's Retry-After (itself capped at the same bound).
    """
    start = float(max(poll.min_interval_s, min(base_s or poll.interval_s, poll.max_backoff_s)))
    delay = pipeline_backoff(error_count - 1, initial_s=start, max_s=float(poll.max_backoff_s), min_fraction=0.5,
                             rng=rng)
    if retry_after_s:
        delay = max(delay, min(retry_after_s, float(poll.max_backoff_s)))
    return delay
