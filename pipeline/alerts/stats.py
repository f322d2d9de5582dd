"""``newsflow alerts list``'s counts, read from the ``alerts-sent`` table's changelog topic.

Every new alert (instant or digest) is one entry ``"<rule>|<story_id>" -> {"alert_id", "article_id", "at"}``
written by whichever worker owns the story; the changelog is on the broker, so every host reads the same
counts. A rule's matches are its entries (stories alerted, once each), its last fired the latest ``at``.
The scan reads the whole changelog (compacted: one record per (rule, story) after compaction), without a
consumer group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kafka.errors import KafkaError

from pipeline.alerts.rules import RuleStats
from pipeline.errors import KafkaUnavailable
from pipeline.schemas import ALERTS_SENT_TABLE
from pipeline.settings import Settings
from pipeline.topic_reader import TopicReader

__all__ = ["read_stats", "sent_changelog"]


def sent_changelog(settings: Settings) -> str:
    """Faust's name for the table's changelog topic: ``<app_id>-<table>-changelog``."""
    return f"{settings.pipeline.app_id}-{ALERTS_SENT_TABLE}-changelog"


def read_stats(settings: Settings) -> dict[str, RuleStats]:
    """Rule name -> matches and last fired, from the broker (no alerts yet: empty).

    Raises:
        KafkaUnavailable: Kafka cannot be reached or the read stopped.
    """
    try:
        with TopicReader(settings, "alerts-stats") as reader:
            return _rule_stats(reader.scan(sent_changelog(settings)))
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot read {sent_changelog(settings)}: {exc}") from exc


def _rule_stats(records: Iterable[Any]) -> dict[str, RuleStats]:
    """Fold the changelog's records (kafka-python ``ConsumerRecord``s, oldest first) into rule name -> stats."""
    entries: dict[str, str | None] = {}  # key -> its latest "at"
    for record in records:
        try:
            key = json.loads(record.key)
            value = json.loads(record.value) if record.value is not None else None
        except (TypeError, ValueError):
            continue  # not one of ours
        if not isinstance(key, str):
            continue
        if value is None:  # a tombstone
            entries.pop(key, None)
        else:
            entries[key] = value.get("at") if isinstance(value, dict) else None
    stats: dict[str, RuleStats] = {}
    for key, at in entries.items():
        rule = key.split("|", 1)[0]  # rule names cannot contain "|"
        st = stats.setdefault(rule, RuleStats())
        st.matches += 1
        if at and (st.last_fired is None or at > st.last_fired):
            st.last_fired = at
    return stats
