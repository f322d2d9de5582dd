"""Per-test Kafka topics: every name starts with ``t<unique>`` (topics, the workers' changelog topics).

Used by the integration tests and by ``bench/alert_latency.py``.
"""

from __future__ import annotations

from kafka.admin import KafkaAdminClient

from pipeline.settings import Settings
from pipeline.topics import ensure_topics

__all__ = ["create_topics", "delete_topics"]


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
