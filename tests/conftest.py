"""Shared fixtures. Integration tests use the real local stack, brought up once per session.

The ``stack`` fixture starts Kafka and Elasticsearch with ``newsflow stack up`` semantics (a no-op
when they already run) and leaves them running: ``.ci/run`` stops them at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pipeline.settings import Settings, load_settings

# Tests serve feeds from loopback.
os.environ.setdefault("NEWSFLOW_ALLOW_PRIVATE_HOSTS", "1")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The real local Kafka broker and Elasticsearch node, up for the whole session."""
    from pipeline.stack import stack_up

    stack_up(settings)
    yield settings


@pytest.fixture()
def unique() -> str:
    """A short unique suffix for topic, group and index names, so tests never share state."""
    return uuid.uuid4().hex[:10]
