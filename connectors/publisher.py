"""The kafka-python producer for news.raw: idempotent, acks=all, gzip, keyed by canonical URL (else guid)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipeline.errors import KafkaUnavailable
from pipeline.logs import get_logger
from pipeline.metrics import FEED_ITEMS_PUBLISHED, FEED_PUBLISH_ERRORS
from pipeline.schemas import RAW_TOPIC, RawItem
from pipeline.security import kafka_failure_hint, kafka_security_config
from pipeline.settings import Settings
from pipeline.topics import ensure_topic

__all__ = ["PublishOutcome", "Publisher"]

log = get_logger(__name__)


@dataclass
class PublishOutcome:
    """Which items Kafka acknowledged and which it did not (those stay unseen and are retried)."""

    acked: list[RawItem] = field(default_factory=list)
    failed: list[tuple[RawItem, str]] = field(default_factory=list)


class Publisher:
    """Sends RawItems to ``<prefix>news.raw``; an item counts only once its send future resolves.

    Args:
        settings: uses ``kafka.bootstrap``, ``kafka.client_id``, ``kafka.topic_prefix``, ``kafka.partitions``.
        create_topic: create the topic when missing (with ``kafka.partitions`` partitions).
    """

    def __init__(self, settings: Settings, *, create_topic: bool = True, **producer_config: Any) -> None:
        self.topic = settings.kafka.topic(RAW_TOPIC)
        if create_topic:
            ensure_topic(settings, self.topic)
        config: dict[str, Any] = {
            "bootstrap_servers": settings.kafka.servers,
            "client_id": f"{settings.kafka.client_id}-connector",
            "acks": "all",
            "enable_idempotence": True,  # retries never duplicate or reorder within a partition
            "compression_type": "gzip",  # always available; lz4/zstd need extra packages
            # Bigger, fewer batches: kafka-python spends ~0.1 ms of CPU per message plus a fixed cost per batch
            # (measured: 1 MB / 20 ms uses ~15% less CPU than 64 kB / 5 ms); 20 ms is nothing next to a poll.
            "linger_ms": 20,
            "batch_size": 1024 * 1024,
            "max_request_size": 8 * 1024 * 1024,
            "retries": 2**31 - 1,
            "delivery_timeout_ms": 60_000,
            **kafka_security_config(settings.kafka),
        }
        config.update(producer_config)
        try:
            self._producer = KafkaProducer(**config)
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot start the Kafka producer ({settings.kafka.bootstrap}): {exc}"
                                f"{kafka_failure_hint(settings.kafka)}") from exc

    async def publish(self, items: list[RawItem]) -> PublishOutcome:
        """Send every item and wait for each acknowledgement without blocking the event loop."""
        outcome = PublishOutcome()
        if not items:
            return outcome
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        # One wake-up of the event loop per call, not per item: the callbacks run on the producer's
        # I/O thread and only count down; the last one resolves `done`.
        errors: dict[int, str] = {}
        pending = [len(items)]
        lock = threading.Lock()

        def settle(index: int, exc: BaseException | None) -> None:
            with lock:
                if exc is not None:
                    errors[index] = f"{type(exc).__name__}: {exc}"
                pending[0] -= 1
                last = pending[0] == 0
            if last:
                loop.call_soon_threadsafe(_resolve, done, None)

        for index, item in enumerate(items):
            try:
                future = self._producer.send(self.topic, key=item.key.encode("utf-8"),
                                             value=item.model_dump_json().encode("utf-8"))
            except KafkaError as exc:  # buffer full past max_block_ms, message too large, closed producer
                settle(index, exc)
                continue
            future.add_callback(lambda _md, i=index: settle(i, None))
            future.add_errback(lambda exc, i=index: settle(i, exc))
        await done
        for index, item in enumerate(items):
            if index in errors:
                outcome.failed.append((item, errors[index]))
            else:
                outcome.acked.append(item)
        FEED_ITEMS_PUBLISHED.inc(len(outcome.acked))
        if outcome.failed:
            FEED_PUBLISH_ERRORS.inc(len(outcome.failed))
        return outcome

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush what is buffered and close the producer (called on stop)."""
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("producer flush failed", error=str(exc))
        finally:
            self._producer.close(timeout=timeout_s)


def _resolve(waiter: asyncio.Future[None], exc: BaseException | None) -> None:
    if waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)
