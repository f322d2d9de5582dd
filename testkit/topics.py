"""Per-test Kafka topics: every name starts with ``t<unique>`` (topics, the workers' changelog topics); writing
to them and reading them whole.

Used by the integration tests and by ``bench/alert_latency.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from pipeline.schemas import DLQ_TOPIC, RAW_TOPIC
from pipeline.settings import Settings
from pipeline.topics import ensure_topics

__all__ = ["TopicReader", "_by_url", "create_topics", "delete_topics", "produce", "trace_missing"]


def create_topics(stack: Settings, unique: str) -> None:
    """Create the test's topics before producing (else the broker auto-creates news.raw with one partition)."""
    kafka = stack.kafka.model_copy(update={"topic_prefix": f"t{unique}.", "partitions": 4})
    ensure_topics(stack.model_copy(update={"kafka": kafka}))


def delete_topics(bootstrap: str, unique: str) -> None:
    """Remove the test's topics and the workers' changelog topics (all start with t<unique>)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(f"t{unique}")]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


class TopicReader:
    """Reads a whole topic from the start, incrementally, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      enable_auto_commit=False, group_id=None)
        self.messages: list[dict] = []

    def poll(self) -> list[dict]:
        for records in self.consumer.poll(timeout_ms=500).values():
            self.messages.extend(json.loads(r.value.decode("utf-8")) for r in records)
        return self.messages

    def wait_for(self, done: Callable[[list[dict]], bool], timeout_s: float, what: str,
                 alive: Callable[[], None] | None = None, describe: Callable[[], str] | None = None) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.poll()):
                return self.messages
            if alive is not None:
                alive()
        where = f"\n{describe()}" if describe is not None else ""
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; got {len(self.messages)}{where}")

    def close(self) -> None:
        self.consumer.close()


def _by_url(messages: list[dict]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for m in messages:
        ids.setdefault(m["canonical_url"], set()).add(m["id"])
    return ids


def trace_missing(bootstrap: str, unique: str, expected: set[str], messages: list[dict]) -> str:
    """For each expected canonical URL missing from ``messages``: the topics it reached, with the ids it had."""
    missing = sorted(expected - set(_by_url(messages)))
    if not missing:
        return "nothing missing"
    seen: dict[str, list[str]] = {url: [] for url in missing}
    for topic in (RAW_TOPIC, "news.clean", "news.deduped", DLQ_TOPIC):
        reader = TopicReader(bootstrap, f"t{unique}.{topic}")
        try:
            for _ in range(6):
                reader.poll()
            for m in reader.messages:
                payload = m
                if topic == DLQ_TOPIC:
                    try:
                        payload = json.loads(m.get("payload") or "{}")
                    except ValueError:
                        continue
                url = payload.get("canonical_url") or payload.get("canonical_link")
                if url in seen:
                    seen[url].append(f"{topic}(id={payload.get('id')}, story={payload.get('story_id')}, "
                                     f"dup_of={payload.get('duplicate_of')}, kind={m.get('kind')})")
        finally:
            reader.close()
    return "missing:\n" + "\n".join(f"  {url}: {' '.join(where) or 'nowhere'}" for url, where in seen.items())
