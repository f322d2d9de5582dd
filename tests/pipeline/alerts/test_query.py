"""The presearcher's reading of alert queries (pipeline.alerts.query), without servers."""

from __future__ import annotations

import pytest

from pipeline.alerts.query import ALWAYS, anchors, evaluate, presearch_condition


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
