"""The search request builder and the sink's documents, without a server (hits as text: test_present.py; the index
template: test_index.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import SearchError
from pipeline.index import index_name
from pipeline.schemas import EnrichedArticle, Entity
from pipeline.search import build_search, parse_since
from pipeline.settings import Settings
from pipeline.sink import article_document, route_time


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("30m", timedelta(minutes=30)),
    ("2w", timedelta(weeks=2)),
    (" 90s ", timedelta(seconds=90)),
], ids=["hours", "days", "minutes", "weeks", "seconds-with-spaces"])
def test_parse_since(text: str, expected: timedelta) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "1y", "-3d", "3 days"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(SearchError, match="--since"):
        parse_since(text)


def test_build_search_defaults_collapse_newest_and_highlight() -> None:
    body = build_search("Rutte AND Kyiv")
    qs = body["query"]["bool"]["must"][0]["query_string"]
    assert qs["query"] == "Rutte AND Kyiv"
    assert qs["fields"][0] == "title^3" and "summary^2" in qs["fields"] and "body" in qs["fields"]
    assert body["collapse"]["field"] == "story_id"
    assert body["sort"][0] == {"published_at": {"order": "desc", "missing": "_last"}}
    assert set(body["highlight"]["fields"]) == {"title", "summary", "body"}
    assert body["query"]["bool"]["filter"] == []


def test_build_search_filters_sort_and_all_copies() -> None:
    body = build_search("*", since=timedelta(hours=24), source="Example News", entity="Mark Rutte",
                        language="EN", limit=5, all_copies=True, sort="best")
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]
    assert "collapse" not in body
    assert body["sort"][0] == "_score"
    assert body["size"] == 5
    filters = body["query"]["bool"]["filter"]
    assert len(filters) == 4
    assert {"term": {"language": "en"}} in filters
    since = filters[0]["bool"]["should"]
    assert since[0] == {"range": {"published_at": {"gte": "now-86400s"}}}


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
