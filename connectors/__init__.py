"""newsflow's feed connectors: RSS/Atom/JSON feeds -> news.raw.

Two entry points, both taking the loaded :class:`~pipeline.settings.Settings`:

* :func:`poll_once` (sync) / :func:`apoll_once` (async): refresh every feed of the list once,
  publish new items, save state, return a :class:`PollSummary`.
* :func:`run_connector` (async): poll continuously as feeds fall due until ``stop_event`` is set
  (an ``asyncio.Event`` or a ``threading.Event``), then finish running refreshes, flush the producer
  and save state. ``newsflow connector`` runs it with SIGTERM/SIGINT wired to the event.

Example::

    summary = poll_once(load_settings(), "config/feeds.yaml")
    summary.items_published, summary.failures  # totals, and {feed URL: "kind: message"} of the feeds that failed
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from connectors.feedlist import FeedSpec
from connectors.service import Connector, PollSummary, StopSignal
from pipeline.settings import Settings

__all__ = ["Connector", "FeedSpec", "PollSummary", "apoll_once", "poll_once", "run_connector"]


async def apoll_once(settings: Settings, feeds_file: str | Path | None = None) -> PollSummary:
    """Poll every feed once and return the totals (async form of :func:`poll_once`)."""
    async with Connector(settings, feeds_file) as connector:
        return await connector.poll_once()


def poll_once(settings: Settings, feeds_file: str | Path | None = None) -> PollSummary:
    """Poll every feed of ``feeds_file`` (default ``poll.feeds_file``) once; blocks until done.

    Raises:
        SettingsError: the feed list is missing or invalid.
        KafkaUnavailable: Kafka cannot be reached to create the topic / start the producer.
    """
    return asyncio.run(apoll_once(settings, feeds_file))


async def run_connector(
    settings: Settings, feeds_file: str | Path | None = None, stop_event: StopSignal | None = None
) -> PollSummary:
    """Poll feeds continuously until ``stop_event`` is set (never, when None), then flush and save state."""
    stop = stop_event if stop_event is not None else asyncio.Event()
    async with Connector(settings, feeds_file) as connector:
        return await connector.run(stop)
