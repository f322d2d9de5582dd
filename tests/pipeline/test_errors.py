"""pipeline.errors: one tree under NewsflowError, a distinct ``kind`` per class, errors that cross processes."""

from __future__ import annotations

import pickle

import pipeline.errors as errors
from pipeline.errors import (
    AlertDeliveryError,
    ArticleDiscarded,
    FeedHTTPStatus,
    FeedTimeout,
    FetchError,
    NewsflowError,
    OffloadedError,
    StageError,
)

EXPORTED = [getattr(errors, name) for name in errors.__all__]


def test_every_error_is_a_newsflow_error_with_its_own_kind() -> None:
    assert all(issubclass(cls, NewsflowError) for cls in EXPORTED)
    # OffloadedError takes its kind from the error it carries.
    kinds = [cls.kind for cls in EXPORTED if cls is not OffloadedError]
    assert len(kinds) == len(set(kinds))


def test_fetch_errors_carry_the_feed_and_http_status() -> None:
    timeout = FeedTimeout("no answer in 2 s", feed_url="https://f.example/rss")
    assert isinstance(timeout, FetchError) and timeout.feed_url == "https://f.example/rss" and timeout.kind == "timeout"
    status = FeedHTTPStatus("429 Too Many Requests", feed_url="https://f.example/rss", status=429, retry_after_s=30.0)
    assert (status.status, status.retry_after_s, status.kind) == (429, 30.0, "http_status")


def test_stage_errors_name_their_stage_and_discards_their_reason() -> None:
    discarded = ArticleDiscarded("too_short", stage="clean")
    assert isinstance(discarded, StageError)
    assert (discarded.reason, discarded.stage, str(discarded)) == ("too_short", "clean", "article discarded: too_short")
    assert str(AlertDeliveryError("slack", "HTTP 500")) == "slack: HTTP 500"


def test_an_offloaded_error_survives_pickling_with_its_kind_and_message() -> None:
    copy = pickle.loads(pickle.dumps(OffloadedError("clean_failed", "lxml gave up")))
    assert isinstance(copy, OffloadedError)
    assert (copy.kind, str(copy)) == ("clean_failed", "lxml gave up")
