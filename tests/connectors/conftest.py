"""Fixtures for connector unit tests: a local feed server and poll settings that allow loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.settings import PollSettings
from testkit.feedserver import FeedServer


@pytest.fixture()
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture()
def poll() -> PollSettings:
    return PollSettings(allow_private_hosts=True, timeout_s=2.0, max_body_bytes=200_000, min_interval_s=60,
                        interval_s=900, max_interval_s=6 * 3600, max_backoff_s=24 * 3600)
