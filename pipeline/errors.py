"""newsflow's error tree. Every class has a short ``kind``: the metric label, the log key and the DLQ field.

::

    NewsflowError
    ├── SettingsError
    ├── StackError                       the local Kafka/Elasticsearch stack could not start or stop
    ├── KafkaUnavailable                 Kafka could not be reached, or refused a topic set-up (at start-up)
    ├── FeedError (feed_url)
    │   ├── FetchError: FeedTimeout, FeedUnreachable, AddressRefused, FeedHTTPStatus(status),
    │   │               BodyTooLarge, TooManyRedirects
    │   ├── FeedParseError: NotAFeed, HostileXML
    │   └── PublishFailed                 Kafka did not acknowledge an item (it stays unseen)
    ├── StageError (stage): CleanFailed, DedupeFailed, EnrichFailed, ArticleDiscarded(reason)
    ├── SinkError: ElasticUnavailable (retried), DocumentRejected (dead-lettered)
    ├── SearchError                      bad query syntax, no index yet, Elasticsearch unreachable
    │   └── SearchRefused                Elasticsearch refused the search (the query, or the credentials)
    ├── AlertDeliveryError (channel)     an alert channel kept failing (dead-lettered, stage alert)
    ├── OffloadedError                   raised in a pool process; carries the original error's kind
    ├── LetterNotFound                   `newsflow dlq show` of an offset that holds no letter
    ├── RunStateUnreadable               the run state file of `newsflow run` is not valid
    └── ReindexError                     `newsflow reindex` refused or failed

Library errors are translated into these at the edge of the module that called the library and
raised ``from`` the original, so nothing above those modules catches a foreign exception.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AddressRefused",
    "AlertDeliveryError",
    "ArticleDiscarded",
    "BodyTooLarge",
    "CleanFailed",
    "DedupeFailed",
    "DocumentRejected",
    "ElasticUnavailable",
    "EnrichFailed",
    "FeedError",
    "FeedHTTPStatus",
    "FeedParseError",
    "FeedTimeout",
    "FeedUnreachable",
    "FetchError",
    "HostileXML",
    "KafkaUnavailable",
    "LetterNotFound",
    "NewsflowError",
    "NotAFeed",
    "OffloadedError",
    "PublishFailed",
    "ReindexError",
    "RunStateUnreadable",
    "SearchError",
    "SearchRefused",
    "SettingsError",
    "SinkError",
    "StackError",
    "StageError",
    "TooManyRedirects",
]


class NewsflowError(Exception):
    """Root of every error newsflow raises on purpose."""

    kind = "error"


class SettingsError(NewsflowError):
    kind = "settings"


class StackError(NewsflowError):
    """The local stack failed; the message names the cause and the log file to read."""

    kind = "stack"


class KafkaUnavailable(NewsflowError):
    """Kafka cannot be reached (or refused to set up a topic): start-up waits and retries, commands exit 1."""

    kind = "kafka_unavailable"


class FeedError(NewsflowError):
    kind = "feed"

    def __init__(self, message: str, *, feed_url: str = "") -> None:
        super().__init__(message)
        self.feed_url = feed_url


class FetchError(FeedError):
    kind = "fetch"


class FeedTimeout(FetchError):
    kind = "timeout"


class FeedUnreachable(FetchError):
    """DNS, connection refused/reset, TLS: the host could not be talked to."""

    kind = "unreachable"


class AddressRefused(FetchError):
    """The URL resolves to a private, loopback or link-local address and those are not allowed."""

    kind = "address_refused"


class FeedHTTPStatus(FetchError):
    """The server answered with an error status; ``status`` holds it (feed state keeps it beside the kind)."""

    kind = "http_status"

    def __init__(self, message: str, *, feed_url: str = "", status: int, retry_after_s: float | None = None):
        super().__init__(message, feed_url=feed_url)
        self.status = status
        self.retry_after_s = retry_after_s


class BodyTooLarge(FetchError):
    """The body, or what it decompresses to, passed the configured cap."""

    kind = "body_too_large"


class TooManyRedirects(FetchError):
    kind = "too_many_redirects"


class PublishFailed(FeedError):
    """Kafka did not acknowledge an item; it stays unseen and is published on the next poll."""

    kind = "publish_failed"


class FeedParseError(FeedError):
    kind = "parse"


class NotAFeed(FeedParseError):
    """The document is not RSS, Atom or JSON Feed (often an HTML page)."""

    kind = "not_a_feed"


class HostileXML(FeedParseError):
    """Entity expansion, external entities or a DTD: refused before parsing."""

    kind = "hostile_xml"


class StageError(NewsflowError):
    kind = "stage"

    def __init__(self, message: str, *, stage: str = "") -> None:
        super().__init__(message)
        self.stage = stage


class CleanFailed(StageError):
    kind = "clean_failed"


class DedupeFailed(StageError):
    kind = "dedupe_failed"


class EnrichFailed(StageError):
    kind = "enrich_failed"


class PoolProcessDied(StageError):
    """The pool process running this message died, and died again on a fresh pool: the message itself kills it
    (a crash or a memory blow-up in a native parser or model), so it is dead-lettered rather than retried forever."""

    kind = "pool_process_died"


class ArticleDiscarded(StageError):
    """A typed reason to drop an article (too short, no text); counted, and dead-lettered for inspection."""

    kind = "discarded"

    def __init__(self, reason: str, *, stage: str = "") -> None:
        super().__init__(f"article discarded: {reason}", stage=stage)
        self.reason = reason


class SinkError(NewsflowError):
    kind = "sink"


class ElasticUnavailable(SinkError):
    """Elasticsearch cannot be reached or answers 429/5xx: retried, never dead-lettered."""

    kind = "elastic_unavailable"


class DocumentRejected(SinkError):
    """Elasticsearch refused this document (mapping error): it goes to news.dlq with the reason."""

    kind = "document_rejected"


class SearchError(NewsflowError):
    """A search could not run: bad query syntax, no index yet, or Elasticsearch unreachable."""

    kind = "search"


class SearchRefused(SearchError):
    """Elasticsearch answered the search with an error: a query it cannot parse, a bad field, a refused login."""

    kind = "search_refused"


class AlertDeliveryError(NewsflowError):
    kind = "alert_delivery"

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel


class OffloadedError(NewsflowError):
    """An exception raised in a pool process, carried back with its ``kind`` and message.

    Exceptions cross the process boundary by pickling, and not every exception survives that (pydantic's
    ValidationError, errors with keyword-only constructor arguments): this one always does.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, str(self)))


class LetterNotFound(NewsflowError):
    kind = "not_found"


class RunStateUnreadable(NewsflowError):
    kind = "run_state"


class ReindexError(NewsflowError):
    kind = "reindex"
