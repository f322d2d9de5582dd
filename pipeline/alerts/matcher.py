"""Which rules match which just-indexed articles: presearch locally, verify in Elasticsearch.

1. Presearch: each document's analysed terms come from Elasticsearch (``_mtermvectors`` on artificial
   documents, so the index's own analyzer: stemming where it is ``english``), and so do the terms of each
   rule's words and phrases (cached). A rule whose :func:`~pipeline.alerts.query.presearch_condition` cannot
   hold for a document is not asked about it.
2. Verify: the candidate rules' queries, each exactly the query ``newsflow search`` builds
   (:func:`pipeline.search.build_search`, with the rule's filters), run as named clauses of one search per
   ``alerts.msearch_chunk`` rules, restricted to the batch's ids, all in one ``_msearch``; each hit's
   ``matched_queries`` names the rules it matches. Elasticsearch's answer is the match, so a rule means what a
   search means. Rules whose query has an exact form (:func:`~pipeline.alerts.query.exact_form`: boolean
   combinations of plain one-term words and keyword values) skip this step: the per-field terms Elasticsearch
   gave in step 1 decide them exactly as its ``query_string`` would. :meth:`Matcher.highlight` then marks the
   rules' terms in the new alerts' articles (:mod:`pipeline.alerts.highlight`), with the offsets step 1 asked
   for: highlighting costs Elasticsearch nothing more (a second analysis of every matched article used to cost
   the worker as much JSON decoding as the first).

The articles must be searchable: :meth:`Matcher.match` refreshes the read alias first (the sink acknowledged
them, the periodic refresh may not have run yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from pipeline.alerts.highlight import FIELDS as HIGHLIGHT_FIELDS
from pipeline.alerts.highlight import Offsets, fragments, offsets_from_vectors
from pipeline.alerts.query import (
    ALWAYS,
    DEFAULT_FIELDS,
    KEYWORD_FIELDS,
    KEYWORD_TERMS,
    Cond,
    Exact,
    anchors,
    cond_terms,
    evaluate,
    exact_form,
    exact_terms,
    highlight_texts,
    keyword_term,
    prefix_term,
    presearch_condition,
)
from pipeline.alerts.rules import Rule
from pipeline.logs import get_logger
from pipeline.metrics import ALERT_CANDIDATES, ALERT_DECIDED_LOCALLY, ALERT_MATCH_SECONDS
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
    # The article's term vectors with offsets, as matching got them: what :meth:`Matcher.highlight` marks.
    vectors: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def rule_search(rule: Rule, *, ids: Sequence[str] | None = None, since: Any = None, limit: int = 10,
                all_copies: bool = True) -> dict[str, Any]:
    """The search request of ``rule``: ``newsflow search``'s own body, optionally restricted to ``ids``."""
    body = build_search(rule.query, since=since, **rule.search_filters(), limit=limit, all_copies=all_copies,
                        sort="newest")
    if ids is not None:
        body["query"]["bool"]["filter"].append({"ids": {"values": list(ids)}})
    return body


def _doc(article: EnrichedArticle) -> dict[str, Any]:
    return {"title": article.title or "", "subtitle": article.subtitle or "",
            "summary": article.summary or "", "body": article.body or "", "entity_names": list(article.entity_names)}


FieldTerms = dict[str, frozenset[str]]  # field (or "" for the default fields, KEYWORD_TERMS) -> its terms
_EMPTY: frozenset[str] = frozenset()


def _terms(vectors: dict[str, Any], field: str) -> frozenset[str]:
    """A field's analysed terms from a document's ``term_vectors``."""
    return frozenset(vectors[field].get("terms", ())) if field in vectors else _EMPTY


ExactCheck = Callable[[FieldTerms], bool]


def _keyword_terms(article: EnrichedArticle) -> frozenset[str]:
    """The keyword fields' exact values, as :func:`keyword_term`s."""
    out: set[str] = set()
    for name, value in article.model_dump(include=set(KEYWORD_FIELDS)).items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                out.add(keyword_term(name, str(v)))
    return frozenset(out)


def _presearch_terms(terms: frozenset[str], keywords: frozenset[str], prefix_lengths: Sequence[int]) -> frozenset[str]:
    """The analysed terms, plus the keyword fields' exact values and the terms' prefixes of the lengths the rules'
    wildcards have."""
    return terms | keywords | {prefix_term(t[:n]) for t in terms for n in prefix_lengths if len(t) >= n}


def _compile(form: Exact, analysed: dict[str, frozenset[str]]) -> ExactCheck | None:
    """``form`` as a function of a document's terms per field; None when a word does not analyse to one term."""
    if form.op == "word":
        terms = analysed.get(form.value)
        if terms is None or len(terms) != 1:
            return None  # no term (a stop word) or several: query_string builds another query
        (term,) = terms
        key = form.field or ""
        return lambda doc: term in doc[key]
    if form.op == "keyword":
        value = form.value
        return lambda doc: value in doc[KEYWORD_TERMS]
    parts = [_compile(p, analysed) for p in form.parts]
    negated = [_compile(p, analysed) for p in form.negated]
    if any(f is None for f in parts) or any(f is None for f in negated):
        return None
    ps = [f for f in parts if f is not None]
    ns = [f for f in negated if f is not None]
    if form.op == "and":
        return lambda doc: all(f(doc) for f in ps) and not any(f(doc) for f in ns)
    if form.op == "or":
        return lambda doc: any(f(doc) for f in ps) and not any(f(doc) for f in ns)
    return lambda doc: not any(f(doc) for f in ns)  # "none"


class Matcher:
    """The loaded rules with their presearch conditions; :meth:`match` finds a batch's (rule, article) pairs."""

    def __init__(self, rules: Sequence[Rule], *, msearch_chunk: int) -> None:
        self.rules = list(rules)
        self.conds: list[Cond] = [presearch_condition(r.query) for r in self.rules]
        self.forms: list[Exact | None] = [exact_form(r.query, source=r.source, language=r.language, tags=r.tags,
                                                     entity=r.entity) for r in self.rules]
        self._checks: list[ExactCheck | None] | None = None
        self.msearch_chunk = msearch_chunk
        self._analysed: dict[str, frozenset[str]] = {}
        # The inverted index: term -> rules filed under it; rules with no anchor are checked for every document.
        self._postings: dict[str, list[int]] | None = None
        self._unanchored: list[int] = []
        self._posting_keys: frozenset[str] = frozenset()
        self._prefixes: list[Cond] | None = None
        self._queries: dict[str, dict[str, Any]] = {}
        self._highlight_texts = {r.name: highlight_texts(r.query) for r in self.rules}
        # Every text whose analysed terms a decision or a highlight needs; rules do not change in a Matcher.
        self._texts = sorted({t for c in self.conds for t in cond_terms(c)}
                             | {t for f in self.forms if f for t in exact_terms(f)}
                             | {t for words, _prefixes in self._highlight_texts.values() for t in words})
        self._highlights: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}

    @property
    def always(self) -> int:
        """How many rules the presearcher cannot narrow (checked against every batch)."""
        if self._postings is not None:
            return len(self._unanchored)
        return sum(1 for c in self.conds if c is ALWAYS)

    @property
    def decided_alone(self) -> list[bool]:
        """Per rule: whether the presearcher decides it alone (its query has an exact form; known once the rules'
        words are analysed, i.e. after the first :meth:`match`)."""
        return [c is not None for c in self._exact_checks()]

    async def _concrete_index(self, es: AsyncElasticsearch, alias: str) -> str | None:
        try:
            return max(await es.indices.get_alias(name=alias))
        except NotFoundError:
            return None

    async def _term_vectors(self, es: AsyncElasticsearch, index: str, docs: list[dict[str, Any]],
                            fields: Sequence[str], *, offsets: bool = False) -> list[dict[str, Any]]:
        """The ``term_vectors`` of artificial documents (field -> terms), by the index's own mapping (one request)."""
        if not docs:
            return []
        resp = await es.mtermvectors(index=index, docs=[
            {"doc": d, "fields": list(fields), "positions": False, "offsets": offsets, "payloads": False,
             "term_statistics": False, "field_statistics": False} for d in docs])
        return [item.get("term_vectors") or {} for item in resp["docs"]]

    async def _analyse_rules(self, es: AsyncElasticsearch, index: str) -> None:
        if len(self._analysed) == len(self._texts):
            return  # all analysed (the common case: once per Matcher)
        missing = [t for t in self._texts if t not in self._analysed]
        for start in range(0, len(missing), 1000):
            chunk = missing[start:start + 1000]
            vectors = await self._term_vectors(es, index, [{"body": t} for t in chunk], ["body"])
            self._analysed.update(zip(chunk, (_terms(v, "body") for v in vectors), strict=True))
        if missing:
            self._postings = None  # anchors, exact checks and highlighted terms depend on the analysed terms
            self._checks = None
            self._highlights = {}

    def _query(self, rule: Rule) -> dict[str, Any]:
        """The rule's search query, built once (rules do not change; a new rules file makes a new Matcher)."""
        query = self._queries.get(rule.name)
        if query is None:
            query = self._queries[rule.name] = rule_search(rule)["query"]
        return query

    def _prefix_conds(self) -> list[Cond]:
        if self._prefixes is None:
            found: list[Cond] = []
            todo = list(self.conds)
            while todo:
                cond = todo.pop()
                if cond.op == "prefix":
                    found.append(cond)
                todo += [p for p in cond.parts if isinstance(p, Cond)]
            self._prefixes = found
        return self._prefixes

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

    def _exact_checks(self) -> list[ExactCheck | None]:
        if self._checks is None:
            self._checks = [_compile(f, self._analysed) if f is not None else None for f in self.forms]
        return self._checks

    def candidates(self, doc_terms: Sequence[frozenset[str]]) -> dict[int, list[int]]:
        """Rule position -> the positions of the documents it could match, for the rules that could match one
        (needs the rules' terms analysed). Sparse: with 10,000 rules, a list per rule for every small batch cost
        more than the look-ups."""
        postings = self._index()
        out: dict[int, list[int]] = {}
        for n, terms in enumerate(doc_terms):
            filed: set[int] = set(self._unanchored)
            for term in terms & self._posting_keys:  # set intersection in C: documents have many terms
                filed.update(postings[term])
            for rule in filed:
                if evaluate(self.conds[rule], self._analysed, terms):
                    out.setdefault(rule, []).append(n)
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
        # With offsets, for the highlights of the alerts to come (one analysis of each article, not two).
        vectors = await self._term_vectors(es, index, [_doc(a) for a in articles], DOC_FIELDS, offsets=True)
        by_id = {a.id: (a, v) for a, v in zip(articles, vectors, strict=True)}
        lengths = sorted({len(str(c.parts[0])) for c in self._prefix_conds()})
        docs: list[FieldTerms] = []
        doc_terms: list[frozenset[str]] = []
        for article, vector in zip(articles, vectors, strict=True):
            fields = {f: _terms(vector, f) for f in DOC_FIELDS}
            keywords = _keyword_terms(article)
            default = frozenset().union(*(fields[f] for f in DEFAULT_FIELDS))
            docs.append({**fields, "": default, KEYWORD_TERMS: keywords})
            doc_terms.append(_presearch_terms(frozenset().union(*fields.values()), keywords, lengths))
        per_rule = self.candidates(doc_terms)
        pairs: list[tuple[Rule, str]] = []
        work: list[tuple[Rule, list[str]]] = []
        checks = self._exact_checks()
        for r in sorted(per_rule):  # in the rules' order, as before
            rule, check, positions = self.rules[r], checks[r], per_rule[r]
            if check is None:
                work.append((rule, [articles[n].id for n in positions]))
            else:
                pairs += [(rule, articles[n].id) for n in positions if check(docs[n])]
                ALERT_DECIDED_LOCALLY.inc()
        ALERT_CANDIDATES.inc(len(work))
        await es.indices.refresh(index=alias)
        chunks = [work[first:first + self.msearch_chunk] for first in range(0, len(work), self.msearch_chunk)]
        searches: list[dict[str, Any]] = []
        for chunk in chunks:
            searches += [{"index": alias}, _verify_body(chunk, self._query)]
        answers: list[dict[str, Any]] = (await es.msearch(searches=searches))["responses"] if searches else []
        for chunk, answer in zip(chunks, answers, strict=True):
            if "error" in answer:
                pairs += await self._verify_one_by_one(es, alias, chunk)
                continue
            for hit in answer["hits"]["hits"]:
                for name in hit.get("matched_queries", []):
                    pairs.append((chunk[int(name)][0], hit["_id"]))
        matches = [Match(rule, by_id[doc_id][0], vectors=by_id[doc_id][1]) for rule, doc_id in pairs if doc_id in by_id]
        ALERT_MATCH_SECONDS.observe(time.perf_counter() - start)
        return matches

    async def _verify_one_by_one(self, es: AsyncElasticsearch, alias: str,
                                 chunk: list[tuple[Rule, list[str]]]) -> list[tuple[Rule, str]]:
        """A chunk Elasticsearch refused: each rule alone, so one bad rule cannot silence the others."""
        resp = await es.msearch(searches=[x for item in chunk for x in ({"index": alias}, _verify_body([item]))])
        pairs: list[tuple[Rule, str]] = []
        for (rule, _ids), answer in zip(chunk, resp["responses"], strict=True):
            if "error" in answer:
                # It cannot match anything, which is what `newsflow search` shows for it too.
                log.warning("alert rule refused by elasticsearch", rule=rule.name, error=str(answer["error"])[:300])
                continue
            pairs += [(rule, hit["_id"]) for hit in answer["hits"]["hits"]]
        return pairs

    def highlight(self, matches: Sequence[Match]) -> list[Match]:
        """The matches with their highlighted fragments (:mod:`pipeline.alerts.highlight`): each rule's terms marked
        locally, at the offsets matching got (needs :meth:`match` to have run: the rules' terms are analysed)."""
        seen: dict[str, tuple[dict[str, str], Offsets]] = {}  # article id -> its texts and offsets, made once
        out: list[Match] = []
        for m in matches:
            a = m.article
            known = seen.get(a.id)
            if known is None:
                texts = {f: getattr(a, f) or "" for f in HIGHLIGHT_FIELDS}
                known = seen[a.id] = (texts, offsets_from_vectors(m.vectors))
            terms, prefixes = self._highlight_terms(m.rule)
            out.append(Match(m.rule, a, fragments(*known, terms, prefixes)))
        return out

    def _highlight_terms(self, rule: Rule) -> tuple[frozenset[str], tuple[str, ...]]:
        found = self._highlights.get(rule.name)
        if found is None:
            words, prefixes = self._highlight_texts[rule.name]
            terms = frozenset().union(*(self._analysed.get(w, frozenset()) for w in words))
            found = self._highlights[rule.name] = (terms, prefixes)
        return found


def _verify_body(chunk: Sequence[tuple[Rule, Sequence[str]]],
                 query_of: Callable[[Rule], dict[str, Any]] = lambda r: rule_search(r)["query"]) -> dict[str, Any]:
    """One search verifying many rules: each rule's own query (``newsflow search``'s, with its filters) as a
    named clause; a hit's ``matched_queries`` are the rules it matches (like a percolator, on the batch only)."""
    ids = sorted({doc_id for _rule, doc_ids in chunk for doc_id in doc_ids})
    should = [{"bool": {**query_of(rule)["bool"], "_name": str(n)}} for n, (rule, _ids) in enumerate(chunk)]
    # Sorted by _doc: no scores to compute, only which named clauses match.
    return {"query": {"bool": {"filter": [{"ids": {"values": ids}}], "should": should, "minimum_should_match": 1}},
            "size": len(ids), "_source": False, "sort": ["_doc"], "track_total_hits": False}


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
