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
