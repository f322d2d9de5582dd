"""The connector loop: pick due feeds, refresh them under a concurrency bound, stop cleanly, save state."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from connectors.feedlist import FeedSpec, load_feeds
from connectors.fetcher import Fetcher
from connectors.publisher import Publisher
from connectors.refresh import RefreshOutcome, failed, refresh_feed
from connectors.state import FeedState, StateStore
from pipeline.logs import get_logger
from pipeline.metrics import FEED_FETCHES, FEED_POLL_SECONDS, FEEDS_FAILING
from pipeline.procs import pool_process_init
from pipeline.settings import Settings

__all__ = ["Connector", "PollSummary", "StopSignal"]

log = get_logger(__name__)

_NEVER_CHECKED = datetime.min.replace(tzinfo=UTC)  # sorts before any due time


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def interleave_hosts(specs: list[FeedSpec]) -> list[FeedSpec]:
    """Order feeds round-robin across hosts, so a bounded pool of workers is never filled by one host's feeds."""
    by_host: dict[str, list[FeedSpec]] = {}
    for spec in specs:
        by_host.setdefault(_host(spec.url), []).append(spec)
    ordered: list[FeedSpec] = []
    for rank in range(max((len(v) for v in by_host.values()), default=0)):
        ordered.extend(group[rank] for group in by_host.values() if rank < len(group))
    return ordered


class StopSignal(Protocol):
    """asyncio.Event and threading.Event both fit: only ``is_set`` is used."""

    def is_set(self) -> bool: ...


@dataclass
class PollSummary:
    """The totals of one round (``poll_once``) or of a whole run (``run``)."""

    feeds_ok: int = 0  # fetched and parsed, or not modified
    feeds_failed: int = 0
    feeds_not_modified: int = 0
    items_published: int = 0
    items_skipped: int = 0  # already published before
    article_failures: int = 0
    took_s: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # feed URL -> error

    def add(self, outcome: RefreshOutcome) -> None:
        if outcome.status == "error":
            self.feeds_failed += 1
            self.failures[outcome.feed_url] = f"{outcome.kind}: {outcome.error}"
        else:
            self.feeds_ok += 1
            self.feeds_not_modified += outcome.status == "not_modified"
        self.items_published += outcome.published
        self.items_skipped += outcome.skipped
        self.article_failures += outcome.article_failures


class Connector:
    """Feeds -> news.raw for one process. ``async with Connector(settings) as c: await c.poll_once()``.

    Args:
        settings: the loaded settings (``poll``, ``kafka``, ``data_dir``).
        feeds_file: the feed list (default ``poll.feeds_file``); ignored when ``specs`` is given.
        specs: feeds to poll instead of a file (tests, benchmarks).
        parse_executor: where feeds are parsed (default: ``poll.parse_processes`` worker processes, or the
            loop's thread pool when that is 0).
    """

    def __init__(
        self,
        settings: Settings,
        feeds_file: str | Path | None = None,
        *,
        specs: Iterable[FeedSpec] | None = None,
        parse_executor: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.poll = settings.poll
        self.feeds_file = settings.path(feeds_file or settings.poll.feeds_file)
        self._fixed_specs = list(specs) if specs is not None else None
        self._own_executor = parse_executor is None and settings.poll.parse_processes > 0
        self._parse_executor = self._new_parse_pool() if self._own_executor else parse_executor
        self.store = StateStore(settings.data_path / "feeds")
        self.states: dict[str, FeedState] = {}
        self._failing: set[str] = set()
        self._fetcher: Fetcher | None = None
        self._publisher: Publisher | None = None
        self._feeds_mtime: float | None = None
        self.specs: list[FeedSpec] = []

    def _new_parse_pool(self) -> ProcessPoolExecutor:
        # forkserver: the workers must not inherit the producer's threads and sockets.
        # Parse processes die with the connector (their parent is the fork server: the owner pid is checked).
        return ProcessPoolExecutor(self.poll.parse_processes, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=pool_process_init, initargs=(os.getpid(),))

    async def __aenter__(self) -> Connector:
        self.specs = self._load_specs()
        # Creating the topic and connecting the producer block: keep them off the event loop.
        self._publisher = await asyncio.to_thread(Publisher, self.settings)
        self._fetcher = Fetcher(self.poll)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush the producer, close the HTTP client, save every feed's state."""
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close)
            self._publisher = None
        for state in self.states.values():
            self.store.save(state)
        if self._own_executor and self._parse_executor is not None:
            self._parse_executor.shutdown(wait=False, cancel_futures=True)

    def _load_specs(self) -> list[FeedSpec]:
        if self._fixed_specs is not None:
            return self._fixed_specs
        self._feeds_mtime = self.feeds_file.stat().st_mtime if self.feeds_file.exists() else None
        return load_feeds(self.feeds_file)

    def _reload_if_changed(self) -> None:
        # `newsflow feeds add` edits the file under a running connector: pick the change up.
        if self._fixed_specs is not None or not self.feeds_file.exists():
            return
        mtime = self.feeds_file.stat().st_mtime
        if mtime != self._feeds_mtime:
            try:
                self.specs = self._load_specs()
                log.info("feed list reloaded", feeds=len(self.specs), path=str(self.feeds_file))
            except Exception as exc:  # a half-edited file keeps the old list
                self._feeds_mtime = mtime
                log.warning("feed list not reloaded", path=str(self.feeds_file), error=str(exc))

    def state(self, url: str) -> FeedState:
        if url not in self.states:
            self.states[url] = self.store.load(url)
        return self.states[url]

    async def refresh(self, spec: FeedSpec) -> RefreshOutcome:
        """Refresh one feed and save its state; never raises for a feed's own failure."""
        assert self._fetcher is not None and self._publisher is not None, "use `async with Connector(...)`"
        state = self.state(spec.url)
        started = time.perf_counter()
        try:
            outcome = await refresh_feed(spec, state, fetcher=self._fetcher, publisher=self._publisher,
                                         poll=self.poll, parse_executor=self._parse_executor)
        except Exception as exc:  # a bug must cost one feed one poll, not the service
            log.exception("feed refresh crashed", feed_url=spec.url)
            if isinstance(exc, BrokenProcessPool) and self._own_executor:
                # A parse worker died (a pathological feed, OOM): later feeds need a fresh pool.
                self._parse_executor = self._new_parse_pool()
            FEED_FETCHES.labels(status="error", kind="internal").inc()
            delay = failed(state, "internal", repr(exc), datetime.now(UTC), self.poll,
                           float(spec.interval or self.poll.interval_s))
            outcome = RefreshOutcome(feed_url=spec.url, status="error", kind="internal", error=repr(exc),
                                     delay_s=delay)
        await asyncio.to_thread(self.store.save, state)
        FEED_POLL_SECONDS.observe(time.perf_counter() - started)
        (self._failing.add if outcome.status == "error" else self._failing.discard)(spec.url)
        FEEDS_FAILING.set(len(self._failing))
        return outcome

    def _start_due(self, running: dict[str, asyncio.Task[RefreshOutcome]]) -> None:
        """Start the due feeds, most overdue first, within ``poll.concurrency`` and ``poll.per_host``.

        A feed never checked has been due since the start, so it goes before every feed already checked: otherwise
        a host whose checked feeds keep falling due again could starve the rest.
        """
        now = datetime.now(UTC)
        due = sorted(
            (s for s in self.specs if s.url not in running and (self.state(s.url).next_check_at or now) <= now),
            key=lambda s: self.state(s.url).next_check_at or _NEVER_CHECKED,
        )
        # Like Miniflux's WithLimitPerHost: a busy host's feeds wait without taking slots from other hosts.
        per_host = Counter(_host(url) for url in running)
        for spec in due:
            if len(running) >= self.poll.concurrency:
                break
            host = _host(spec.url)
            if per_host[host] >= self.poll.per_host:
                continue
            per_host[host] += 1
            running[spec.url] = asyncio.create_task(self.refresh(spec))

    async def poll_once(self, specs: Iterable[FeedSpec] | None = None) -> PollSummary:
        """Refresh every feed once (due or not), at most ``poll.concurrency`` at a time."""
        started = time.perf_counter()
        summary = PollSummary()
        bound = asyncio.Semaphore(self.poll.concurrency)

        async def one(spec: FeedSpec) -> None:
            async with bound:
                summary.add(await self.refresh(spec))

        await asyncio.gather(*(one(s) for s in interleave_hosts(self.specs if specs is None else list(specs))))
        summary.took_s = time.perf_counter() - started
        log.info("poll round done", feeds_ok=summary.feeds_ok, feeds_failed=summary.feeds_failed,
                 published=summary.items_published, skipped=summary.items_skipped, took_ms=round(summary.took_s * 1000))
        return summary

    async def run(self, stop: StopSignal) -> PollSummary:
        """Poll feeds as they fall due until ``stop`` is set; then let running refreshes finish and close.

        Due feeds start most overdue first (:meth:`_start_due`); at most ``poll.concurrency`` refreshes run at once.
        """
        summary = PollSummary()
        started = time.perf_counter()
        running: dict[str, asyncio.Task[RefreshOutcome]] = {}
        log.info("connector started", feeds=len(self.specs), topic=self._publisher.topic if self._publisher else None)
        while not stop.is_set():
            self._reload_if_changed()
            for url, task in list(running.items()):
                if task.done():
                    del running[url]
                    summary.add(task.result())
            self._start_due(running)
            if running:
                # Wake as soon as a refresh ends: its host's slot is free for the next due feed. A fixed tick
                # capped a host at per_host refreshes per tick (500 feeds on one host: ~5 polls/s).
                await asyncio.wait(running.values(), timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(0.5)  # nothing due
        if running:
            log.info("connector stopping, finishing running refreshes", running=len(running))
            done, pending = await asyncio.wait(running.values(), timeout=self.poll.timeout_s * 2 + 5)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is None:
                    summary.add(task.result())
        summary.took_s = time.perf_counter() - started
        log.info("connector stopped", published=summary.items_published, failed_polls=summary.feeds_failed)
        return summary
