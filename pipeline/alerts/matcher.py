"""Which rules match which just-indexed articles: presearch locally, verify in Elasticsearch.

1. Presearch: each document's analysed terms come from Elasticsearch (``_mtermvectors`` on artificial
   documents, so the index's own analyzer: stemming where it is ``english``), and so do the terms of each
   rule's words and phrases (cached). A rule whose :func:`~pipeline.alerts.query.presearch_condition` cannot
   hold for a document is not asked about it.
2. Verify: every candidate rule runs as the exact request ``newsflow search`` builds
   (:func:`pipeline.search.build_search`, with the rule's filters), restricted to its candidate ids, in
   ``_msearch`` requests. Elasticsearch's answer is the match, so a rule means what a search means.

The articles must be searchable: :meth:`Matcher.match` refreshes the read alias first (the sink acknowledged
them, the periodic refresh may not have run yet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from pipeline.alerts.query import (
    ALWAYS,
    KEYWORD_FIELDS,
    PREFIX_LEN,
    Cond,
    anchors,
    cond_terms,
    evaluate,
    keyword_term,
    prefix_term,
    presearch_condition,
)
from pipeline.alerts.rules import Rule
from pipeline.logs import get_logger
from pipeline.metrics import ALERT_CANDIDATES, ALERT_MATCH_SECONDS
from pipeline.schemas import EnrichedArticle
from pipeline.search import build_search

__all__ = ["DOC_FIELDS", "Match", "Matcher", "rule_search"]

log = get_logger(__name__)

# The text fields a query without a field name (or naming one of them) can reach.
DOC_FIELDS = ("title", "subtitle", "summary", "body", "entity_names.text")


@dataclass(frozen=True)
class Match:
    rule: Rule
    article: EnrichedArticle
    highlight: dict[str, list[str]] = field(default_factory=dict)


def rule_search(rule: Rule, *, ids: Sequence[str] | None = None, since: Any = None, limit: int = 10,
                all_copies: bool = True) -> dict[str, Any]:
    """The search request of ``rule``: ``newsflow search``'s own body, optionally restricted to ``ids``."""
    body = build_search(rule.query, since=since, source=rule.source, entity=rule.entity, language=rule.language,
                        feed_tags=rule.tags, limit=limit, all_copies=all_copies, sort="newest")
    if ids is not None:
        body["query"]["bool"]["filter"].append({"ids": {"values": list(ids)}})
    return body


def _doc(article: EnrichedArticle) -> dict[str, Any]:
    return {"title": article.title or "", "subtitle": article.subtitle or "",
            "summary": article.summary or "", "body": article.body or "", "entity_names": list(article.entity_names)}


def _presearch_terms(article: EnrichedArticle, terms: frozenset[str]) -> frozenset[str]:
    """The analysed terms, plus the keyword fields' exact values and the terms' prefixes (for wildcards)."""
    extra = {prefix_term(t[:n]) for t in terms for n in range(PREFIX_LEN, len(t) + 1)}
    doc = article.model_dump(include=KEYWORD_FIELDS)
    for name, value in doc.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                extra.add(keyword_term(name, str(v)))
    return terms | extra


class Matcher:
    """The loaded rules with their presearch conditions; :meth:`match` finds a batch's (rule, article) pairs."""

    def __init__(self, rules: Sequence[Rule], *, msearch_chunk: int = 500) -> None:
        self.rules = list(rules)
        self.conds: list[Cond] = [presearch_condition(r.query) for r in self.rules]
        self.msearch_chunk = msearch_chunk
        self._analysed: dict[str, frozenset[str]] = {}
        # The inverted index: term -> rules filed under it; rules with no anchor are checked for every document.
        self._postings: dict[str, list[int]] | None = None
        self._unanchored: list[int] = []
        self._posting_keys: frozenset[str] = frozenset()

    @property
    def always(self) -> int:
        """How many rules the presearcher cannot narrow (checked against every batch)."""
        if self._postings is not None:
            return len(self._unanchored)
        return sum(1 for c in self.conds if c is ALWAYS)

    async def _concrete_index(self, es: AsyncElasticsearch, alias: str) -> str | None:
        try:
            return max(await es.indices.get_alias(name=alias))
        except NotFoundError:
            return None

    async def _term_vectors(self, es: AsyncElasticsearch, index: str, docs: list[dict[str, Any]],
                            fields: Sequence[str]) -> list[frozenset[str]]:
        """The analysed terms of artificial documents, by the index's own mapping (one request)."""
        if not docs:
            return []
        resp = await es.mtermvectors(index=index, docs=[
            {"doc": d, "fields": list(fields), "positions": False, "offsets": False, "payloads": False,
             "term_statistics": False, "field_statistics": False} for d in docs])
        out = []
        for item in resp["docs"]:
            terms: set[str] = set()
            for vector in (item.get("term_vectors") or {}).values():
                terms.update(vector.get("terms", {}))
            out.append(frozenset(terms))
        return out

    async def _analyse_rules(self, es: AsyncElasticsearch, index: str) -> None:
        missing = sorted({t for c in self.conds for t in cond_terms(c)} - self._analysed.keys())
        for start in range(0, len(missing), 1000):
            chunk = missing[start:start + 1000]
            vectors = await self._term_vectors(es, index, [{"body": t} for t in chunk], ["body"])
            self._analysed.update(zip(chunk, vectors, strict=True))
        if missing:
            self._postings = None  # anchors depend on the analysed terms

    def _index(self) -> dict[str, list[int]]:
        if self._postings is None:
            postings: dict[str, list[int]] = {}
            self._unanchored = []
            for n, cond in enumerate(self.conds):
                terms = anchors(cond, self._analysed)
                if terms is None:
                    self._unanchored.append(n)
                    continue
                for term in terms:
                    postings.setdefault(term, []).append(n)
            self._postings = postings
            self._posting_keys = frozenset(postings)
        return self._postings

    def candidates(self, doc_terms: Sequence[frozenset[str]]) -> list[list[int]]:
        """For each rule, the positions of the documents it could match (needs the rules' terms analysed)."""
        postings = self._index()
        out: list[list[int]] = [[] for _ in self.rules]
        for n, terms in enumerate(doc_terms):
            filed: set[int] = set(self._unanchored)
            for term in terms & self._posting_keys:  # set intersection in C: documents have many terms
                filed.update(postings[term])
            for rule in filed:
                if evaluate(self.conds[rule], self._analysed, terms):
                    out[rule].append(n)
        return out

    async def match(self, es: AsyncElasticsearch, alias: str, articles: Sequence[EnrichedArticle]) -> list[Match]:
        """The (rule, article) pairs among ``articles`` (already acknowledged by Elasticsearch).

        Raises:
            elasticsearch.ApiError / TransportError: Elasticsearch is unavailable (the caller retries).
        """
        if not self.rules or not articles:
            return []
        start = time.perf_counter()
        index = await self._concrete_index(es, alias)
        if index is None:
            return []
        await self._analyse_rules(es, index)
        vectors = await self._term_vectors(es, index, [_doc(a) for a in articles], DOC_FIELDS)
        doc_terms = [_presearch_terms(a, terms) for a, terms in zip(articles, vectors, strict=True)]
        per_rule = self.candidates(doc_terms)
        work = [(rule, [articles[n].id for n in positions])
                for rule, positions in zip(self.rules, per_rule, strict=True) if positions]
        ALERT_CANDIDATES.inc(len(work))
        await es.indices.refresh(index=alias)
        by_id = {a.id: a for a in articles}
        matches: list[Match] = []
        for first in range(0, len(work), self.msearch_chunk):
            chunk = work[first:first + self.msearch_chunk]
            searches: list[dict[str, Any]] = []
            for rule, ids in chunk:
                body = rule_search(rule, ids=ids, limit=len(ids))
                for key in ("sort", "track_total_hits", "track_scores"):
                    body.pop(key, None)
                body["_source"] = False
                searches += [{"index": alias}, body]
            resp = await es.msearch(searches=searches)
            for (rule, _ids), answer in zip(chunk, resp["responses"], strict=True):
                if "error" in answer:
                    # A rule Elasticsearch refuses (it passed validation against another version, say):
                    # it cannot match anything, which is what `newsflow search` would show too.
                    log.warning("alert rule refused by elasticsearch", rule=rule.name,
                                error=str(answer["error"])[:300])
                    continue
                for hit in answer["hits"]["hits"]:
                    article = by_id.get(hit["_id"])
                    if article is not None:
                        matches.append(Match(rule, article, hit.get("highlight", {})))
        ALERT_MATCH_SECONDS.observe(time.perf_counter() - start)
        return matches


async def story_copies(es: AsyncElasticsearch, alias: str, story_ids: Sequence[str]) -> dict[str, int]:
    """How many indexed articles each story has so far (for the payload)."""
    if not story_ids:
        return {}
    try:
        resp = await es.search(index=alias, size=0, query={"terms": {"story_id": list(story_ids)}},
                               aggs={"s": {"terms": {"field": "story_id", "size": len(story_ids)}}})
    except (ApiError, TransportError) as exc:
        log.warning("story copies unavailable", error=str(exc)[:200])
        return {}
    return {b["key"]: int(b["doc_count"]) for b in resp["aggregations"]["s"]["buckets"]}
