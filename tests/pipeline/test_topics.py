"""pipeline.topics without a broker: the layout and the one creation path, over a fake admin client."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline import topics
from pipeline.errors import SettingsError
from pipeline.settings import Settings


class _Admin:
    """A KafkaAdminClient holding topic name -> NewTopic; ``race`` makes the next creation lose to another process."""

    def __init__(self, existing: dict[str, NewTopic], race: bool = False) -> None:
        self.topics = existing
        self.race = race

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def create_topics(self, new: list[NewTopic]) -> None:
        if self.race:
            raise TopicAlreadyExistsError()
        self.topics.update({t.name: t for t in new})

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{}] * self.topics[n].num_partitions} for n in names if n in self.topics]

    def close(self) -> None:
        pass


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> dict[str, NewTopic]:
    held: dict[str, NewTopic] = {}
    monkeypatch.setattr(topics, "KafkaAdminClient", lambda **_kw: _Admin(held))
    return held


def _settings(**kafka: Any) -> Settings:
    s = Settings()
    return s.model_copy(update={"kafka": s.kafka.model_copy(update=kafka)})


def test_layout_has_one_partition_where_order_or_one_view_matters() -> None:
    layout = topics.topic_layout(_settings(partitions=4, topic_prefix="t."))
    assert layout == {"t.news.raw": 4, "t.news.clean": 1, "t.news.deduped": 4, "t.news.enriched": 4,
                      "t.news.dlq": 1, "t.news.indexed": 1, "t.news.alerts": 1, "t.news.digests": 1}


def test_ensure_topic_creates_once_with_its_partitions_and_config(broker: dict[str, NewTopic]) -> None:
    s = _settings(partitions=3)
    assert topics.ensure_topic(s, "a") is True
    assert topics.ensure_topic(s, "a") is False
    assert topics.ensure_topic(s, "c", partitions=1, configs={"cleanup.policy": "compact"}) is True
    assert (broker["a"].num_partitions, broker["a"].topic_configs) == (3, {})
    assert (broker["c"].num_partitions, broker["c"].topic_configs) == (1, {"cleanup.policy": "compact"})


def test_losing_the_creation_race_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topics, "KafkaAdminClient", lambda **_kw: _Admin({}, race=True))
    assert topics.ensure_topic(_settings(), "a") is False


def test_ensure_topics_creates_the_layout_and_the_replay_topic_is_compacted(broker: dict[str, NewTopic]) -> None:
    s = _settings(partitions=2)
    assert topics.ensure_topics(s) == topics.topic_layout(s)
    name = topics.ensure_replayed_topic(s)
    assert (broker[name].num_partitions, broker[name].topic_configs) == (1, {"cleanup.policy": "compact"})


def test_a_clean_topic_with_several_partitions_is_refused(broker: dict[str, NewTopic]) -> None:
    s = _settings()
    broker["news.clean"] = NewTopic("news.clean", num_partitions=2, replication_factor=1)
    with pytest.raises(SettingsError, match="exactly 1"):
        topics.ensure_topics(s)
