"""refresh_feed: the one-feed recipe (fetch -> parse -> new items -> article pages -> publish -> state)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.feedlist import FeedSpec
from connectors.fetcher import Fetcher
from connectors.fullpage import fetch_article, needs_article
from connectors.parser import ParsedFeed, parse_feed
from connectors.publisher import Publisher
from connectors.schedule import backoff_delay, next_interval
from connectors.state import FeedState, distinct
from pipeline.errors import FeedError, FeedHTTPStatus, FeedParseError, PublishFailed
from pipeline.logs import get_logger
from pipeline.metrics import FEED_FETCHES, FEED_ITEMS_SKIPPED, FEED_PARSE_ERRORS
from pipeline.schemas import RawItem
from pipeline.settings import PollSettings

__all__ = ["RefreshOutcome", "failed", "refresh_feed"]

log = get_logger(__name__)


@dataclass
class RefreshOutcome:
    """What one refresh did; summed up by ``poll_once`` and the service loop."""

    feed_url: str
    status: str  # ok / not_modified / error
    published: int = 0
    skipped: int = 0
    publish_failed: int = 0
    article_failures: int = 0
    kind: str | None = None
    error: str | None = None
    delay_s: float = 0.0


def _oldest_first(items: list[RawItem]) -> list[RawItem]:
    # Feeds list newest first; publishing oldest first keeps news.raw roughly in publication order.
    # (The ignore: mypy cannot see that only dated items reach the key.)
    dated = sorted((i for i in items if i.published_at), key=lambda i: i.published_at)  # type: ignore[arg-type,return-value]
    return dated + [i for i in reversed(items) if not i.published_at]


async def refresh_feed(
    spec: FeedSpec,
    state: FeedState,
    *,
    fetcher: Fetcher,
    publisher: Publisher,
    poll: PollSettings,
    parse_executor: Executor | None = None,
    now: datetime | None = None,
) -> RefreshOutcome:
    """Refresh one feed and update ``state`` in place (the caller saves it).

    1. Fetch the feed (or where it permanently moved) with its ETag / Last-Modified.
    2. 304, or a body identical to the last one: nothing to parse; schedule and stop.
    3. Parse off the event loop; the parser skips the items published before (``skip_ids``).
    4. Fetch article pages for summary-only items when the entry asks for it.
    5. Publish and wait for Kafka's acknowledgements; only acknowledged items become "seen".
    6. Only when every new item was acknowledged store the validators and body hash: otherwise the
       next poll must get the full document again to retry the rest.
    7. Schedule the next check: adaptive interval on success, capped exponential backoff on error.
    Errors never escape: they are counted, logged with the feed URL and recorded in ``state``.
    """
    now = now or datetime.now(UTC)
    url = state.moved_to or spec.url
    outcome = RefreshOutcome(feed_url=spec.url, status="ok")
    state.polls += 1
    state.last_checked_at = now
    base = float(spec.interval or poll.interval_s)
    try:
        # Step 1.
        result = await fetcher.fetch(url, etag=state.etag, last_modified=state.last_modified, feed_url=spec.url)
        if result.permanent_url and result.permanent_url != state.moved_to:
            log.info("feed moved permanently", feed_url=spec.url, moved_to=result.permanent_url)
            state.moved_to = result.permanent_url
        # Step 2.
        body_hash = hashlib.sha256(result.body).hexdigest()[:32] if not result.not_modified else state.body_hash
        if result.not_modified or body_hash == state.body_hash:
            outcome.status = "not_modified"
            # kind "unchanged": a 200 with the same bytes as last time (a server ignoring conditional GET).
            FEED_FETCHES.labels(status="not_modified", kind="none" if result.not_modified else "unchanged").inc()
            state.etag = result.etag or state.etag
            state.last_modified = result.last_modified or state.last_modified
            _succeeded(state, outcome, "not_modified", now, state.interval_s or base)
            return outcome
        # Step 3.
        loop = asyncio.get_running_loop()
        parsed: ParsedFeed = await loop.run_in_executor(parse_executor, functools.partial(
            parse_feed, result.body, feed_url=spec.url, base_url=result.effective_url,
            content_type=result.content_type, feed_name=spec.name, tags=list(spec.tags),
            language=spec.language, fetched_at=now, skip_ids=frozenset(state.seen)))
        FEED_FETCHES.labels(status="ok", kind="none").inc()
        state.title = parsed.title or state.title
        new = distinct(parsed.items)  # seen items were skipped by the parser: the one seen-filter of a refresh
        outcome.skipped = parsed.item_count - len(new)
        FEED_ITEMS_SKIPPED.inc(outcome.skipped)
        # Step 4.
        if new and (poll.fetch_article if spec.fetch_article is None else spec.fetch_article):
            fetched = await asyncio.gather(*(fetch_article(fetcher, i) if needs_article(i) else _same(i) for i in new))
            new = [item for item, _ok in fetched]
            outcome.article_failures = sum(1 for _item, ok in fetched if not ok)
            state.article_fetch_failures += outcome.article_failures
        # Step 5.
        sent = await publisher.publish(_oldest_first(new))
        state.mark_seen(sent.acked, poll.seen_ids_per_feed)
        state.items_published += len(sent.acked)
        outcome.published = len(sent.acked)
        outcome.publish_failed = len(sent.failed)
        # Step 6.
        if sent.failed:
            raise PublishFailed(f"{len(sent.failed)} of {len(new)} items not acknowledged by Kafka: "
                                f"{sent.failed[0][1]}", feed_url=spec.url)
        state.etag, state.last_modified, state.body_hash = result.etag, result.last_modified, body_hash
        # Step 7.
        interval = next_interval(poll, base_s=base, published=parsed.published, ttl_s=parsed.ttl_s,
                                 update_period_s=parsed.update_period_s)
        _succeeded(state, outcome, "ok", now, interval)
    except FeedError as exc:
        _failed(state, outcome, exc, now, poll, base)
    return outcome


async def _same(item: RawItem) -> tuple[RawItem, bool]:
    return item, True


def _succeeded(state: FeedState, outcome: RefreshOutcome, status: str, now: datetime, interval: float) -> None:
    state.error_count = 0
    state.last_status = status
    state.last_success_at = now
    state.interval_s = interval
    state.next_check_at = now + timedelta(seconds=interval)
    outcome.delay_s = interval


def _failed(state: FeedState, outcome: RefreshOutcome, exc: FeedError, now: datetime, poll: PollSettings,
            base: float) -> None:
    kind = exc.kind  # the status code itself is in the message ("HTTP 410 from ...")
    if isinstance(exc, FeedParseError):
        FEED_PARSE_ERRORS.labels(kind=exc.kind).inc()
    if not isinstance(exc, PublishFailed):
        FEED_FETCHES.labels(status="error", kind=exc.kind).inc()
    retry_after = exc.retry_after_s if isinstance(exc, FeedHTTPStatus) else None
    delay = failed(state, kind, str(exc), now, poll, base, retry_after_s=retry_after)
    outcome.status, outcome.kind, outcome.error, outcome.delay_s = "error", kind, str(exc), delay
    log.warning("feed refresh failed", feed_url=state.url, kind=kind, error=str(exc),
                error_count=state.error_count, retry_in_s=round(delay, 1))


def failed(state: FeedState, kind: str, error: str, now: datetime, poll: PollSettings, base_s: float, *,
           retry_after_s: float | None = None) -> float:
    """Record a failed refresh and schedule the next try with backoff; returns the delay in seconds.

    Every failure goes through here, a feed's own error or a crash of the refresh itself: a feed that fails
    without a next check time would be retried on every tick of the service loop.
    """
    state.record_failure(kind, error, now)
    delay = backoff_delay(poll, state.error_count, retry_after_s=retry_after_s, base_s=base_s)
    state.next_check_at = now + timedelta(seconds=delay)
    return delay
