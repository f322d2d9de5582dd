"""Create newsflow's topics with the partition counts the pipeline's design needs (idempotent).

::

    news.raw       N partitions, key = canonical URL   clean runs in parallel across workers
    news.clean     1 partition,  key = canonical URL   dedupe needs one global view (the LSH index)
    news.deduped   N partitions, key = article id      enrich, the expensive stage, runs in parallel
    news.enriched  N partitions, key = article id      index
    news.dlq       1 partition                         inspection and replay
    news.dlq.replayed  1 partition, compacted          which dead letters were replayed (by `newsflow dlq replay`)
    news.indexed   1 partition, key = story id         alerts (after Elasticsearch acknowledged)
    news.alerts    1 partition                         AlertEvent for other consumers
    news.digests   1 partition, key = rule name        a digest rule's alerts, to the owner of its window

N is ``kafka.partitions``. Faust creates the dedupe tables' changelog topics itself (1 partition each).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import KafkaUnavailable, SettingsError
from pipeline.logs import get_logger
from pipeline.schemas import (
    ALERTS_TOPIC,
    CLEAN_TOPIC,
    DEDUPED_TOPIC,
    DIGESTS_TOPIC,
    DLQ_REPLAYED_TOPIC,
    DLQ_TOPIC,
    ENRICHED_TOPIC,
    INDEXED_TOPIC,
    RAW_TOPIC,
)
from pipeline.security import kafka_failure_hint, kafka_security_config
from pipeline.settings import Settings

__all__ = ["ensure_replayed_topic", "ensure_topic", "ensure_topics", "topic_layout"]

log = get_logger(__name__)


@contextlib.contextmanager
def _admin(settings: Settings, what: str) -> Iterator[KafkaAdminClient]:
    """An admin client for ``what`` (a topic set-up step); any Kafka failure becomes KafkaUnavailable."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka.servers, client_id=settings.kafka.client_id,
                                 **kafka_security_config(settings.kafka))
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka.bootstrap}: {exc}"
                               f"{kafka_failure_hint(settings.kafka)}") from exc
    try:
        yield admin
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot {what} on {settings.kafka.bootstrap}: {exc}") from exc
    finally:
        admin.close()


def _create_missing(admin: KafkaAdminClient, settings: Settings, partitions: Mapping[str, int],
                    configs: Mapping[str, str] | None = None) -> list[str]:
    """The one topic creation: create those of ``partitions`` (name -> count) that are missing, with
    ``kafka.replication_factor`` and ``configs``; return the names created (none when another process won the
    race)."""
    existing = set(admin.list_topics())
    missing = [NewTopic(name, num_partitions=parts, replication_factor=settings.kafka.replication_factor,
                        topic_configs=dict(configs or {}))
               for name, parts in partitions.items() if name not in existing]
    if not missing:
        return []
    try:
        admin.create_topics(missing)
    except TopicAlreadyExistsError:  # another process won the race
        return []
    created = [t.name for t in missing]
    log.info("topics created", topics=created)
    return created


def ensure_topic(settings: Settings, name: str, *, partitions: int | None = None,
                 configs: Mapping[str, str] | None = None) -> bool:
    """Create ``name`` if it is missing, with ``partitions`` partitions (default ``kafka.partitions``) and topic
    ``configs``; True when it was created.

    Raises:
        KafkaUnavailable: the broker cannot be reached or refused the topic.
    """
    parts = settings.kafka.partitions if partitions is None else partitions
    with _admin(settings, f"create topic {name}") as admin:
        return bool(_create_missing(admin, settings, {name: parts}, configs))


def topic_layout(settings: Settings) -> dict[str, int]:
    """Full topic name -> partition count."""
    n = settings.kafka.partitions
    layout = {RAW_TOPIC: n, CLEAN_TOPIC: 1, DEDUPED_TOPIC: n, ENRICHED_TOPIC: n, DLQ_TOPIC: 1, INDEXED_TOPIC: 1,
              ALERTS_TOPIC: 1, DIGESTS_TOPIC: 1}
    return {settings.kafka.topic(name): parts for name, parts in layout.items()}


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create the missing topics; return name -> partitions as they are on the broker.

    Raises:
        KafkaUnavailable: the broker cannot be reached.
        SettingsError: news.clean exists with more than one partition (dedupe would be wrong).
    """
    layout = topic_layout(settings)
    with _admin(settings, "create topics") as admin:
        _create_missing(admin, settings, layout)
        found = {
            d.get("topic") or d["name"]: len(d["partitions"])
            for d in admin.describe_topics(list(layout))
            if not d.get("error_code")
        }
    clean = settings.kafka.topic(CLEAN_TOPIC)
    if found.get(clean, 1) != 1:
        raise SettingsError(f"{clean} has {found[clean]} partitions; near-duplicate detection needs exactly 1")
    return found


def ensure_replayed_topic(settings: Settings) -> str:
    """Create the compacted ``news.dlq.replayed`` topic when missing (only `newsflow dlq replay` needs it).

    Compacted, keyed by the letter's position: it keeps one record per replayed letter for as long as the
    topic exists, however long news.dlq's own retention is.

    Raises:
        KafkaUnavailable: the broker cannot be reached.
    """
    name = settings.kafka.topic(DLQ_REPLAYED_TOPIC)
    ensure_topic(settings, name, partitions=1, configs={"cleanup.policy": "compact"})
    return name
