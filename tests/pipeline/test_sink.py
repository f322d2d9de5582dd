"""pipeline.sink: the document indexed for an article and the time that routes it to a monthly index.

Bulk indexing, retries while Elasticsearch is down and dead-lettering are integration tests
(tests/integration/test_sink*.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.index import index_name
from pipeline.schemas import EnrichedArticle, Entity
from pipeline.settings import Settings
from pipeline.sink import article_document, route_time


def _article(**kw: object) -> EnrichedArticle:
    data: dict[str, object] = dict(
        id="a1", story_id="s1", feed_url="http://feeds.example/rss", title="NATO signals compromise",
        body="Mark Rutte arrived in Kiev.", ingested_at=datetime(2026, 2, 4, 12, tzinfo=UTC),
        text_fingerprint="fp", entities=[Entity(name="Mark Rutte", label="PERSON", count=2)],
        entity_names=["Mark Rutte"],
    )
    data.update(kw)
    return EnrichedArticle.model_validate(data)


def test_document_has_indexed_at_and_labeled_entities() -> None:
    now = datetime(2026, 2, 4, 12, 0, 1, tzinfo=UTC)
    doc = article_document(_article(), now)
    assert doc["indexed_at"].startswith("2026-02-04T12:00:01")
    assert doc["entity_labeled"] == ["Mark Rutte (PERSON)"]
    assert doc["entities"] == [{"name": "Mark Rutte", "label": "PERSON", "count": 2}]


def test_route_time_prefers_published_and_falls_back_to_ingested() -> None:
    settings = Settings()
    assert index_name(settings, route_time(_article())) == "news-2026.02"
    published = _article(published_at=datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    assert index_name(settings, route_time(published)) == "news-2026.01"
