"""A rule's search request (pipeline.alerts.matcher), without Elasticsearch."""

from __future__ import annotations

from pipeline.alerts.matcher import rule_search
from pipeline.alerts.rules import Channels, Rule
from pipeline.search import build_search


def test_rule_search_is_search_request_plus_ids() -> None:
    rule = Rule(name="r", query="energy", source="Reuters", language="EN", tags=["world"],
                channels=Channels(log=True))
    body = rule_search(rule, ids=["x", "y"])
    plain = build_search("energy", source="Reuters", language="EN", feed_tags=["world"], all_copies=True)
    assert body["query"]["bool"]["must"] == plain["query"]["bool"]["must"]
    assert body["query"]["bool"]["filter"][:-1] == plain["query"]["bool"]["filter"]
    assert body["query"]["bool"]["filter"][-1] == {"ids": {"values": ["x", "y"]}}


def _doc(**fields: set[str]) -> dict[str, frozenset[str]]:
    from pipeline.alerts.query import DEFAULT_FIELDS, KEYWORD_TERMS, TEXT_FIELDS

    doc = {f: frozenset(fields.get(f.replace(".", "_"), set())) for f in TEXT_FIELDS}
    doc[""] = frozenset().union(*(doc[f] for f in DEFAULT_FIELDS))
    doc[KEYWORD_TERMS] = frozenset(fields.get("keywords", set()))
    return doc


def test_exact_checks_read_the_fields_query_string_reads() -> None:
    from pipeline.alerts.matcher import _compile
    from pipeline.alerts.query import exact_form, keyword_term

    analysed = {w: frozenset({w}) for w in ("nato", "kiev", "truce", "russia")} | {"the": frozenset()}

    def check(query: str, **kw: str) -> object:
        form = exact_form(query, **kw)  # type: ignore[arg-type]
        assert form is not None, query
        return _compile(form, analysed)

    title_only, subtitle_only = _doc(title={"nato"}), _doc(subtitle={"nato"})
    default = check("nato")
    assert default is not None and default(title_only) and not default(subtitle_only)  # subtitle: not a default field
    in_title = check("title:nato")
    assert in_title is not None and in_title(title_only) and not in_title(_doc(body={"nato"}))
    across = check("nato AND kiev")  # explicit AND: each word in any default field
    assert across is not None and across(_doc(title={"nato"}, entity_names_text={"kiev"}))
    negated = check("nato AND NOT russia")
    assert negated is not None and negated(_doc(body={"nato"})) and not negated(_doc(body={"nato"}, summary={"russia"}))
    source = check("nato", source="Reuters")
    assert source is not None and not source(_doc(body={"nato"}))
    assert source(_doc(body={"nato"}, keywords={keyword_term("source_domain", "reuters")}))
    # A word the analyzer drops (a stop word) or splits: Elasticsearch decides.
    stop_form = exact_form("the AND nato")
    assert stop_form is not None and _compile(stop_form, analysed) is None
