"""The wire format: one pydantic model and one topic name per topic. Nothing else defines a message.

Messages are UTF-8 JSON objects with snake_case fields that match the Elasticsearch mapping, so any
Kafka client can read them. Every model carries ``schema_version``: a new field extends a model;
a change of meaning bumps the version and keeps a reader for the old one. Times are timezone-aware
UTC; the feed's original string is kept beside the parsed value (``published_raw``).

Path of one article::

    news.raw (RawItem, key = canonical URL or guid)
      -> clean  -> news.clean (CleanArticle, key = canonical URL)
      -> dedupe -> news.deduped (DedupedArticle, key = id)
      -> enrich -> news.enriched (EnrichedArticle, key = id)
      -> sink (Elasticsearch) / alerts -> news.alerts (AlertEvent)
    any stage -> news.dlq (DeadLetter) -- `newsflow dlq replay` --> source topic; news.dlq.replayed (ReplayRecord)

One header travels beside a message: the MinHash signature of a CleanArticle's body (:data:`SIGNATURE_HEADER`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ALERTS_SENT_TABLE",
    "ALERTS_TOPIC",
    "CLEAN_TOPIC",
    "DEDUPED_TOPIC",
    "DIGESTS_TOPIC",
    "DLQ_REPLAYED_TOPIC",
    "DLQ_TOPIC",
    "ENRICHED_TOPIC",
    "INDEXED_TOPIC",
    "RAW_TOPIC",
    "SIGNATURE_HEADER",
    "AlertEvent",
    "CleanArticle",
    "DeadLetter",
    "DedupedArticle",
    "DigestItem",
    "EnrichedArticle",
    "Entity",
    "RawItem",
    "ReplayRecord",
    "decode_signature",
    "encode_signature",
    "header_value",
    "utcnow",
]

RAW_TOPIC = "news.raw"
CLEAN_TOPIC = "news.clean"
DEDUPED_TOPIC = "news.deduped"
ENRICHED_TOPIC = "news.enriched"
DLQ_TOPIC = "news.dlq"
ALERTS_TOPIC = "news.alerts"
# Compacted: one record per replayed dead letter, key "<partition>:<offset>" of the letter on news.dlq.
DLQ_REPLAYED_TOPIC = "news.dlq.replayed"
# EnrichedArticle JSON of what Elasticsearch acknowledged, key = story_id (the alerts agent's input).
INDEXED_TOPIC = "news.indexed"
# The Faust table of alerts sent once per (rule, story); `alerts list` counts its changelog topic's entries.
ALERTS_SENT_TABLE = "alerts-sent"
# DigestItem JSON, key = rule name: a digest rule's alerts, all on one partition (its window's owner).
DIGESTS_TOPIC = "news.digests"

# The MinHash signature travels from clean to dedupe in a Kafka header on news.clean, so the CPU work runs in
# the parallel clean stage and the single dedupe consumer only looks things up. Readers that do not know it
# ignore it.
SIGNATURE_HEADER = "newsflow-minhash"


def encode_signature(signature: Sequence[int], num_perm: int, shingle_size: int) -> bytes:
    return f"{num_perm}/{shingle_size}:".encode() + struct.pack(f"<{len(signature)}Q", *signature)


def decode_signature(value: bytes | None, num_perm: int, shingle_size: int) -> list[int] | None:
    """The signature in a header, or None when absent or made with other parameters (then it is recomputed)."""
    prefix = f"{num_perm}/{shingle_size}:".encode()
    if not value or not value.startswith(prefix) or len(value) != len(prefix) + 8 * num_perm:
        return None
    return list(struct.unpack(f"<{num_perm}Q", value[len(prefix) :]))


def header_value(event: Any, name: str) -> bytes | None:
    """The value of header ``name`` of a Faust event (its headers are a dict or a list of pairs), or None."""
    headers = event.headers or {}
    pairs = headers.items() if isinstance(headers, dict) else headers
    value: bytes
    for key, value in pairs:
        if key == name:
            return value
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    # Readers ignore fields they do not know, so a producer may add fields before consumers upgrade.
    model_config = ConfigDict(frozen=True, extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return value


class RawItem(_Message):
    """One feed item as published on ``news.raw`` by the connector."""

    schema_version: Literal[1] = 1
    feed_url: str
    feed_title: str | None = None
    feed_name: str | None = None  # the name given in the feed list
    guid: str | None = None
    link: str | None = None
    canonical_link: str | None = None  # pipeline.canonical.canonical_url(link)
    title: str | None = None
    summary: str | None = None  # as the feed gave it (may be HTML)
    content: str | None = None  # full HTML when the feed carries it (content:encoded) or it was fetched
    content_fetched: bool = False  # True when `content` came from fetching `link`
    authors: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # from the feed list entry
    published_at: AwareDatetime | None = None
    published_raw: str | None = None
    updated_at: AwareDatetime | None = None
    updated_raw: str | None = None
    fetched_at: AwareDatetime = Field(default_factory=utcnow)
    language: str | None = None  # a hint from the feed or the feed list, not a detection
    enclosures: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """The Kafka key: the canonical URL, else the guid, else the link, else the feed URL + title."""
        return self.canonical_link or self.guid or self.link or f"{self.feed_url}#{self.title or ''}"


class CleanArticle(_Message):
    """The main text and metadata of one item, on ``news.clean``."""

    schema_version: Literal[1] = 1
    url: str | None = None
    canonical_url: str | None = None
    feed_url: str
    guid: str | None = None
    title: str
    subtitle: str | None = None
    summary: str | None = None  # plain text
    body: str  # plain text, boilerplate removed, Unicode NFC
    authors: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    published_at: AwareDatetime | None = None
    published_raw: str | None = None
    ingested_at: AwareDatetime  # when the connector fetched it
    source: str | None = None  # outlet name
    source_domain: str | None = None
    syndicated_from: str | None = None  # e.g. "Kommersant" from "first published by Kommersant"
    language: str | None = None  # detected
    word_count: int = 0
    text_fingerprint: str  # pipeline.canonical.text_fingerprint(body)

    @property
    def key(self) -> str:
        return self.canonical_url or self.text_fingerprint


class DedupedArticle(CleanArticle):
    """A clean article with its identity decided, on ``news.deduped``."""

    id: str  # stable: from the canonical URL, else the text fingerprint
    version: int = 1  # bumped when the text at the same URL changes (a correction)
    story_id: str  # shared by every copy of one story
    duplicate_of: str | None = None  # id of the first copy; None for the first copy itself


class Entity(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # normalised: "Mark Rutte" for "Rutte", "Kyiv" for "Kiev" where configured
    label: str  # PERSON, ORG, GPE, LOC, NORP, EVENT, FAC, PRODUCT, WORK_OF_ART, LAW
    count: int = 1


class EnrichedArticle(DedupedArticle):
    """The finished article on ``news.enriched``: what Elasticsearch indexes and alerts match."""

    entities: list[Entity] = Field(default_factory=list)
    entity_names: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    enriched_at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetter(_Message):
    """A message a stage could not handle, with the original payload, on ``news.dlq``."""

    schema_version: Literal[1] = 1
    stage: str  # clean, dedupe, enrich, sink, alerts, connector
    kind: str  # errors.NewsflowError.kind, or the exception class name
    error: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    payload: str  # the original message, decoded as UTF-8 with replacement
    failed_at: AwareDatetime = Field(default_factory=utcnow)
    # For replay (added compatibly: older letters lack them and read as False/None). The original bytes in
    # base64 when they were not valid UTF-8 (``payload`` then differs from them); True when ``payload`` was cut.
    payload_base64: str | None = None
    payload_truncated: bool = False


class ReplayRecord(_Message):
    """A dead letter put back on its source topic, on the compacted ``news.dlq.replayed`` (key = letter)."""

    schema_version: Literal[1] = 1
    dlq_partition: int
    dlq_offset: int
    stage: str
    kind: str
    topic: str  # where the payload went
    replayed_at: AwareDatetime = Field(default_factory=utcnow)


class AlertEvent(_Message):
    """One rule matched one story, on ``news.alerts``."""

    schema_version: Literal[1] = 1
    alert_id: str = ""  # stable hash of (rule, story_id): receivers drop a rare repeat by it
    rule: str
    query: str
    article_id: str
    story_id: str
    title: str
    url: str | None = None
    source: str | None = None
    published_at: AwareDatetime | None = None
    matched_at: AwareDatetime = Field(default_factory=utcnow)
    indexed_at: AwareDatetime | None = None  # when Elasticsearch acknowledged the article
    fragments: list[str] = Field(default_factory=list)  # highlighted passages, matched terms in <em>
    entities: list[str] = Field(default_factory=list)  # the article's top entities
    copies: int = 1  # copies of the story indexed so far


class DigestItem(_Message):
    """One alert of a digest rule on its way to the rule's window (``news.digests``, key = rule name)."""

    schema_version: Literal[1] = 1
    rule: str
    interval_s: float = Field(gt=0)  # the rule's digest interval when it matched: a window opened now lasts this long
    alert: AlertEvent
