"""The presearcher's reading of alert queries (pipeline.alerts.query), without servers."""

from __future__ import annotations

import pytest

from pipeline.alerts.query import ALWAYS, Exact, anchors, evaluate, exact_form, keyword_term, presearch_condition


def _possible(query: str, terms: set[str]) -> bool:
    # Identity analysis (lowercase), enough to check the boolean reading.
    cond = presearch_condition(query)
    analysed: dict[str, frozenset[str]] = {}

    def collect(c: object) -> None:
        if getattr(c, "op", None) == "text":
            text = c.parts[0]  # type: ignore[attr-defined]
            analysed[text] = frozenset(text.lower().split())
        for p in getattr(c, "parts", ()):
            if not isinstance(p, str):
                collect(p)

    collect(cond)
    return evaluate(cond, analysed, frozenset(terms))


@pytest.mark.parametrize(("query", "terms", "possible"), [
    ("energy truce", {"energy", "truce"}, True),
    ("energy truce", {"energy"}, False),  # default operator AND
    ('"energy truce"', {"truce"}, False),
    ("NATO AND (Ukraine OR Kiev)", {"nato", "kiev"}, True),
    ("NATO AND (Ukraine OR Kiev)", {"ukraine", "kiev"}, False),
    # Lucene's classic parser, not precedence: "a AND b OR c" requires a only; "a OR b c" requires c.
    ("a AND b OR c", {"a"}, True),
    ("a AND b OR c", {"c"}, False),
    ("a OR b c", {"c"}, True),
    ("a OR b c", {"a", "b"}, False),
    ("a NOT b", {"a", "b"}, True),  # NOT is Elasticsearch's to decide
    ("NOT a", set(), True),
    ("ener*", {"\x00prefix=ener"}, True),  # a document lists its terms' prefixes (see _presearch_terms)
    ("ener*", {"\x00prefix=ene"}, False),
    ("en*", set(), True),  # too short a prefix to narrow
    ("source:Reuters", {"\x00source=Reuters"}, True),  # keyword fields: exact values
    ("source:Reuters", {"\x00source=reuters", "reuters"}, False),
    ('entity_names:"Mark Rutte" OR nato', {"nato"}, True),
    ("published_at:[now-1d TO now]", set(), True),  # other fields: Elasticsearch decides
    ("title:energy", {"oil"}, False),
    ("energy~ truce", {"truce"}, True),
    ("a AND (", set(), True),  # luqum cannot read it: always a candidate
])
def test_presearch_is_conservative_lucene_reading(query: str, terms: set[str], possible: bool) -> None:
    assert _possible(query, terms) is possible


def test_unreadable_or_match_all_queries_always_candidates() -> None:
    assert presearch_condition("*") is ALWAYS
    assert presearch_condition("entity_names:Mark*") is ALWAYS
    assert presearch_condition("a\\:b") is ALWAYS


def test_anchors_file_a_rule_under_few_terms() -> None:
    analysed = {w: frozenset({w}) for w in ("nato", "ukraine", "kiev", "a", "energy")}
    assert anchors(presearch_condition("NATO AND (Ukraine OR Kiev)"), {k.upper() if k == "nato" else k.capitalize(): v
                                                                     for k, v in analysed.items()}) == {"nato"}
    assert anchors(presearch_condition("a OR energy"), analysed) == {"a", "energy"}
    assert anchors(presearch_condition("a OR ener*"), analysed) == {"a", "\x00prefix=ener"}
    assert anchors(presearch_condition("NOT a"), analysed) is None


@pytest.mark.parametrize("query", [
    "nato", "nato AND ukraine", "nato OR kiev", "nato AND NOT russia", "NOT russia", "title:nato OR body:kiev",
    "(nato OR kiev) AND NOT (russia OR moscow)", "nato^2 AND kiev", 'source:"Reuters" AND nato', "language:fr OR nato",
    'entity_names:"Mark Rutte"', "subtitle:truce",
])
def test_explicit_boolean_queries_of_plain_words_have_an_exact_form(query: str) -> None:
    assert exact_form(query) is not None


@pytest.mark.parametrize("query", [
    "nato ukraine",  # whitespace: query_string wants both words in one field
    "nato -russia", "+nato kiev", "nato OR kiev ukraine",
    '"energy truce"', "ukr*", "nato~1", '"nato kiev"~3', "published_at:[2026-01-01 TO *]", "co-op", "*",
    "nato AND (NOT russia)",  # a nested pure negation matches nothing in Lucene: left to Elasticsearch
    "title:(nato OR kiev)" + " AND " + "url:x",
])
def test_other_queries_are_left_to_elasticsearch(query: str) -> None:
    assert exact_form(query) is None


def test_exact_form_reads_like_lucene() -> None:
    form = exact_form("(nato OR kiev) AND NOT russia")
    assert form is not None and form.op == "and" and len(form.parts) == 1 and len(form.negated) == 1
    assert {p.value for p in form.parts[0].parts} == {"nato", "kiev"} and form.parts[0].op == "or"
    lone = exact_form("NOT russia")
    assert lone is not None and lone.op == "none" and lone.negated[0].value == "russia"
    # "a AND b OR c" requires a only (the classic parser's reading; the presearcher's too).
    assert exact_form("nato AND kiev OR russia") == Exact("and", (Exact("word", value="nato"),))


def test_rule_filters_join_the_exact_form_and_the_entity_filter_does_not() -> None:
    form = exact_form("nato", source="Reuters", language="EN", tags=["world", "europe"])
    assert form is not None and form.op == "and"
    word, source, language, tags = form.parts
    assert word.value == "nato"
    assert {p.value for p in source.parts} == {keyword_term("source", "Reuters"),
                                               keyword_term("source_domain", "reuters")}
    assert language.value == keyword_term("language", "en")
    assert {p.value for p in tags.parts} == {keyword_term("tags", "world"), keyword_term("tags", "europe")}
    assert exact_form("nato", entity="Mark Rutte") is None
