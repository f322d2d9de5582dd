"""Create newsflow's topics with the partition counts the pipeline's design needs (idempotent).

::

    news.raw       N partitions, key = canonical URL   clean runs in parallel across workers
    news.clean     1 partition,  key = canonical URL   dedupe needs one global view (the LSH index)
    news.deduped   N partitions, key = article id      enrich, the expensive stage, runs in parallel
    news.enriched  N partitions, key = article id      index
    news.dlq       1 partition                         inspection and replay
    news.indexed   N partitions, key = story id        alerts (after Elasticsearch acknowledged)
    news.alerts    1 partition                         AlertEvent for other consumers

N is ``kafka.partitions``. Faust creates the dedupe tables' changelog topics itself (1 partition each).
"""

from __future__ import annotations

import contextlib

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import SettingsError, StackError
from pipeline.logs import get_logger
from pipeline.schemas import (
    ALERTS_TOPIC,
    CLEAN_TOPIC,
    DEDUPED_TOPIC,
    DLQ_TOPIC,
    ENRICHED_TOPIC,
    INDEXED_TOPIC,
    RAW_TOPIC,
)
from pipeline.settings import Settings

__all__ = ["ensure_topics", "topic_layout"]

log = get_logger(__name__)


def topic_layout(settings: Settings) -> dict[str, int]:
    """Full topic name -> partition count."""
    n = settings.kafka.partitions
    layout = {RAW_TOPIC: n, CLEAN_TOPIC: 1, DEDUPED_TOPIC: n, ENRICHED_TOPIC: n, DLQ_TOPIC: 1, INDEXED_TOPIC: n,
              ALERTS_TOPIC: 1}
    return {settings.kafka.topic(name): parts for name, parts in layout.items()}


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create the missing topics; return name -> partitions as they are on the broker.

    Raises:
        StackError: the broker cannot be reached.
        SettingsError: news.clean exists with more than one partition (dedupe would be wrong).
    """
    layout = topic_layout(settings)
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka.servers, client_id=settings.kafka.client_id)
    except KafkaError as exc:
        raise StackError(f"cannot reach Kafka at {settings.kafka.bootstrap}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=settings.kafka.replication_factor)
            for name, parts in layout.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(missing)
            log.info("topics created", topics=[t.name for t in missing])
        found = {
            d.get("topic") or d["name"]: len(d["partitions"])
            for d in admin.describe_topics(list(layout))
            if not d.get("error_code")
        }
    except KafkaError as exc:
        raise StackError(f"cannot create topics on {settings.kafka.bootstrap}: {exc}") from exc
    finally:
        admin.close()
    clean = settings.kafka.topic(CLEAN_TOPIC)
    if found.get(clean, 1) != 1:
        raise SettingsError(f"{clean} has {found[clean]} partitions; near-duplicate detection needs exactly 1")
    return found
