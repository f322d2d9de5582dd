"""Searching the indexed articles: query-string syntax, filters, story collapse, highlights.

:func:`build_search` is a pure function from the CLI's options to the search request (tested without a
server); :func:`search_articles` runs it on the read alias and returns :class:`Hit` objects that the CLI
prints as text or JSON (:mod:`pipeline.present`).

Query syntax is Elasticsearch's ``query_string``: words (all must match: ``default_operator`` AND, since
an analyst typing two words means both), "phrases", ``AND``/``OR``/``NOT``, ``field:value``
(``source:Reuters``, ``language:en``, ``entity_names:"Mark Rutte"``), wildcards. It runs over
``title^3, summary^2, body, entity_names``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError

from pipeline.errors import SearchError, SearchRefused
from pipeline.index import api_error_reason as _reason
from pipeline.index import make_client
from pipeline.settings import Settings

__all__ = ["SEARCH_FIELDS", "Hit", "SearchResult", "build_search", "parse_since", "search_articles", "search_index"]

SEARCH_FIELDS = ["title^3", "summary^2", "body", "entity_names.text^2"]
Sort = Literal["newest", "best"]

_SINCE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> timedelta:
    """``"24h"``, ``"7d"``, ``"30m"``, ``"2w"``, ``"90s"`` -> a timedelta.

    Raises:
        SearchError: for anything else.
    """
    match = _SINCE.match(value)
    if not match:
        raise SearchError(f"--since must be a number and a unit s/m/h/d/w, such as 24h or 7d (got {value!r})")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _since_filter(since: timedelta) -> dict[str, Any]:
    # Articles without a published time count from when they were fetched.
    gte = f"now-{int(since.total_seconds())}s"
    return {"bool": {"minimum_should_match": 1, "should": [
        {"range": {"published_at": {"gte": gte}}},
        {"bool": {"must_not": {"exists": {"field": "published_at"}},
                  "filter": {"range": {"ingested_at": {"gte": gte}}}}},
    ]}}


def build_search(
    query: str,
    *,
    since: timedelta | None = None,
    source: str | None = None,
    entity: str | None = None,
    language: str | None = None,
    feed_tags: tuple[str, ...] | list[str] = (),
    limit: int = 10,
    all_copies: bool = False,
    sort: Sort = "newest",
    tags: tuple[str, str] = ("<em>", "</em>"),
) -> dict[str, Any]:
    """The keyword arguments of ``Elasticsearch.search`` for these options (no index)."""
    text = query.strip()
    must: dict[str, Any] = (
        {"query_string": {"query": text, "fields": SEARCH_FIELDS, "default_operator": "AND", "lenient": True}}
        if text and text != "*" else {"match_all": {}}
    )
    filters: list[dict[str, Any]] = []
    if since is not None:
        filters.append(_since_filter(since))
    if source:
        filters.append({"bool": {"minimum_should_match": 1, "should": [
            {"term": {"source": source}}, {"term": {"source_domain": source.lower()}}]}})
    if entity:
        filters.append({"bool": {"minimum_should_match": 1, "should": [
            {"term": {"entity_names": entity}},
            {"match_phrase": {"entity_names.text": entity}}]}})
    if language:
        filters.append({"term": {"language": language.lower()}})
    if feed_tags:  # any of them (the tag filter of alert rules)
        filters.append({"terms": {"tags": list(feed_tags)}})
    newest = [{"published_at": {"order": "desc", "missing": "_last"}}, {"ingested_at": {"order": "desc"}}]
    body: dict[str, Any] = {
        "query": {"bool": {"must": [must], "filter": filters}},
        "size": limit,
        "sort": newest if sort == "newest" else ["_score", *newest],
        "track_total_hits": True,
        "highlight": {
            "pre_tags": [tags[0]], "post_tags": [tags[1]],
            "fields": {"title": {"number_of_fragments": 0},
                       "summary": {"fragment_size": 180, "number_of_fragments": 1},
                       "body": {"fragment_size": 180, "number_of_fragments": 1}},
        },
    }
    if sort == "newest":
        body["track_scores"] = True  # so --json still shows how well each hit matched
    if not all_copies:
        # One hit per story; inner_hits (size 0) only counts the copies.
        body["collapse"] = {"field": "story_id", "inner_hits": {"name": "copies", "size": 0}}
    return body


@dataclass
class Hit:
    """One search result: the document plus score, highlight and how many copies its story has."""

    id: str
    index: str
    score: float | None
    document: dict[str, Any]
    highlight: dict[str, list[str]] = field(default_factory=dict)
    copies: int = 1

    @property
    def title(self) -> str:
        return str(self.document.get("title") or "(no title)")

    @property
    def time(self) -> str | None:
        value = self.document.get("published_at") or self.document.get("ingested_at")
        return str(value) if value else None

    def as_dict(self) -> dict[str, Any]:
        return {**self.document, "_id": self.id, "_index": self.index, "_score": self.score,
                "highlight": self.highlight, "copies": self.copies}


@dataclass
class SearchResult:
    total: int
    took_ms: int
    hits: list[Hit]


def search_articles(es: Elasticsearch, settings: Settings, query: str, **options: Any) -> SearchResult:
    """Run :func:`build_search` on the read alias.

    Raises:
        SearchRefused: the server refused the search: bad query syntax (its reason), a refused login.
        SearchError: no index yet, or the server unreachable.
    """
    body = build_search(query, **options)
    try:
        resp = es.search(index=settings.es.alias, **body)
    except NotFoundError as exc:
        raise SearchError(f"no index {settings.es.alias!r} yet: run `newsflow index setup` or start the "
                          "pipeline") from exc
    except ApiError as exc:
        raise SearchRefused(f"search refused ({exc.meta.status}): {_reason(exc)}") from exc
    except TransportError as exc:
        raise SearchError(f"Elasticsearch at {settings.es.url} unreachable: {exc}") from exc
    hits = []
    for raw in resp["hits"]["hits"]:
        copies = raw.get("inner_hits", {}).get("copies", {}).get("hits", {}).get("total", {}).get("value", 1)
        hits.append(Hit(id=raw["_id"], index=raw["_index"], score=raw.get("_score"), document=raw["_source"],
                        highlight=raw.get("highlight", {}), copies=int(copies)))
    return SearchResult(total=int(resp["hits"]["total"]["value"]), took_ms=int(resp["took"]), hits=hits)


def search_index(settings: Settings, query: str, **options: Any) -> SearchResult:
    """:func:`search_articles` on a client of its own, closed after (for commands)."""
    es = make_client(settings.es)
    try:
        return search_articles(es, settings, query, **options)
    finally:
        es.close()
