"""Read a topic from outside the consumer group, for commands: offsets, counts by time, and a bounded scan.

The operations commands (``status``, ``dlq``, ``reindex``) look at topics without joining the app's consumer
group (``pipeline.app_id``): they assign partitions themselves, never commit, and read a snapshot that ends at
the end offsets seen when the scan started, so a scan of a busy topic still ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipeline.errors import KafkaUnavailable
from pipeline.security import kafka_security_config
from pipeline.settings import Settings

__all__ = ["TopicReader"]

_POLL_MS = 500
# A snapshot scan that receives nothing this many polls in a row while records are still due gives up:
# the broker went away or the records were deleted by retention meanwhile.
_IDLE_POLLS = 20


class TopicReader:
    """One KafkaConsumer without a group; close it after use (it is a context manager)."""

    def __init__(self, settings: Settings, purpose: str) -> None:
        self.settings = settings
        try:
            self.consumer = KafkaConsumer(
                bootstrap_servers=settings.kafka.servers,
                client_id=f"{settings.kafka.client_id}-{purpose}",
                **kafka_security_config(settings.kafka),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                consumer_timeout_ms=_POLL_MS,
                request_timeout_ms=15_000,
            )
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka.bootstrap}: {exc}") from exc

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.consumer.close(autocommit=False)

    def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions; empty when the topic does not exist."""
        parts = self.consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(self.consumer.end_offsets(tps)) if tps else {}

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(self.consumer.beginning_offsets(tps)) if tps else {}

    def _position(self, tp: TopicPartition) -> int:
        """The consumer's next offset on ``tp``; kafka-python gives None when it could not fetch or reset one."""
        position = self.consumer.position(tp)
        if position is None:
            raise KafkaUnavailable(f"{tp.topic}[{tp.partition}]: no position from Kafka")
        return position

    def offsets_at(self, tps: list[TopicPartition], when: datetime) -> dict[TopicPartition, int]:
        """Per partition, the first offset whose record time is at or after ``when`` (the end when none is)."""
        if not tps:
            return {}
        found = self.consumer.offsets_for_times({tp: int(when.timestamp() * 1000) for tp in tps})
        ends = self.end_offsets(tps)
        return {tp: (at.offset if (at := found.get(tp)) is not None else ends[tp]) for tp in tps}

    def count(self, topic: str) -> int | None:
        """Records currently held by the topic (end minus beginning); None when it does not exist."""
        tps = self.partitions(topic)
        if not tps:
            return None
        ends, starts = self.end_offsets(tps), self.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)

    def count_since(self, topic: str, when: datetime) -> int | None:
        """Records appended at or after ``when`` (by record timestamp); None when the topic does not exist."""
        tps = self.partitions(topic)
        if not tps:
            return None
        ends, starts = self.end_offsets(tps), self.offsets_at(tps, when)
        return sum(ends[tp] - starts[tp] for tp in tps)

    def scan(self, topic: str, *, since: datetime | None = None,
             start: dict[int, int] | None = None) -> Iterator[Any]:
        """The topic's records up to the end offsets of now, partition by partition in offset order.

        ``since`` starts at the first record at or after that time; ``start`` (partition -> offset) starts
        there instead (for resuming a scan). Yields kafka-python ``ConsumerRecord``s.
        """
        tps = self.partitions(topic)
        if not tps:
            return
        ends = self.end_offsets(tps)
        if start is not None:
            first = {tp: max(start.get(tp.partition, 0), 0) for tp in tps}
            lows = self.beginning_offsets(tps)
            first = {tp: max(first[tp], lows[tp]) for tp in tps}
        elif since is not None:
            first = self.offsets_at(tps, since)
        else:
            first = self.beginning_offsets(tps)
        for tp in tps:
            if first[tp] >= ends[tp]:
                continue
            self.consumer.assign([tp])
            self.consumer.seek(tp, first[tp])
            idle = 0
            # The consumer's position, not the last record, says when the snapshot is read: compaction and
            # transaction markers leave offsets without records.
            while self._position(tp) < ends[tp]:
                if idle >= _IDLE_POLLS:
                    raise KafkaUnavailable(f"{topic}[{tp.partition}]: read stopped at offset "
                                     f"{self._position(tp)} of {ends[tp]}")
                batch = self.consumer.poll(timeout_ms=_POLL_MS, max_records=500)
                records = batch.get(tp, [])
                idle = 0 if records else idle + 1
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    yield record
        self.consumer.unsubscribe()
