"""connectors.publisher: an item counts as published only once Kafka acknowledged it.

Without a broker (nothing listens on 127.0.0.1:9) every send fails: those items come back as failed, with the
reason, and are counted as publish errors; none is acked. Acknowledged sends need a broker: integration tests
(tests/integration/test_connector.py).
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from connectors.publisher import Publisher, PublishOutcome
from pipeline.schemas import RAW_TOPIC, RawItem
from pipeline.settings import load_settings


def _publisher() -> Publisher:
    settings = load_settings(environ={"NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    # A fixed api_version: the producer starts without asking a broker; a short max_block_ms: sends give up fast.
    publisher = Publisher(settings, create_topic=False, api_version=(2, 5, 0), max_block_ms=200)
    assert publisher.topic == settings.kafka.topic(RAW_TOPIC)
    return publisher


async def test_items_kafka_did_not_acknowledge_are_failed_not_acked() -> None:
    errors_before = REGISTRY.get_sample_value("newsflow_feed_publish_errors_total") or 0.0
    items = [RawItem(feed_url="https://f.example/rss", guid=str(n), link=f"https://news.example/{n}") for n in range(2)]
    publisher = _publisher()
    try:
        outcome = await publisher.publish(items)
    finally:
        publisher.close(timeout_s=1.0)
    assert outcome.acked == []
    assert [item for item, _ in outcome.failed] == items
    assert all("KafkaTimeoutError" in reason for _, reason in outcome.failed)
    assert REGISTRY.get_sample_value("newsflow_feed_publish_errors_total") == errors_before + 2


async def test_nothing_to_publish_sends_nothing() -> None:
    publisher = _publisher()
    try:
        assert await publisher.publish([]) == PublishOutcome()
    finally:
        publisher.close(timeout_s=1.0)
