"""The search request builder, without a server (hits as text: test_present.py; the index template: test_index.py;
the sink's documents: test_sink.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.errors import SearchError
from pipeline.search import build_search, parse_since


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
