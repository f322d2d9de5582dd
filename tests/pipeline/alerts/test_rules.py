"""The alert rules file (pipeline.alerts.rules): round trip and errors; a rule from `alerts add`'s options and what
`alerts test` searches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import pipeline.search
from pipeline.alerts.matcher import rule_search
from pipeline.alerts.rules import (
    Channels,
    Rule,
    add_rule,
    find_rule,
    load_rules,
    remove_rule,
    rule_from_options,
    rule_matches,
    save_rules,
)
from pipeline.errors import SettingsError
from pipeline.search import SearchResult, build_search
from pipeline.settings import load_settings


def test_rules_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    assert load_rules(path) == []
    rules = [Rule(name="a", query="energy", channels=Channels(webhook="https://h.example/x", email=["a@b.c"]),
                  secret="k"),
             Rule(name="b", query="flood", mode="digest", digest="1h", channels=Channels(log=True))]
    save_rules(path, rules)
    assert load_rules(path) == rules
    path.write_text("rules:\n- name: x\n  query: q\n  channels: {}\n")
    with pytest.raises(SettingsError, match=r"rule 1 \(x\).*at least one channel"):
        load_rules(path)
    path.write_text("rules:\n- {name: x, query: q, channels: {log: true}, mode: digest, digest: soon}\n")
    with pytest.raises(SettingsError, match="digest interval"):
        load_rules(path)


def test_add_replace_find_remove(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    first = Rule(name="a", query="x", channels=Channels(log=True))
    other = Rule(name="b", query="y", channels=Channels(log=True))
    assert add_rule(path, first, replace=False) and add_rule(path, other, replace=False)
    changed = first.model_copy(update={"query": "z"})
    assert not add_rule(path, changed, replace=False) and find_rule(path, "a") == first
    assert add_rule(path, changed, replace=True)
    assert [r.name for r in load_rules(path)] == ["b", "a"] and find_rule(path, "a") == changed
    assert remove_rule(path, "a") and not remove_rule(path, "a")
    assert load_rules(path) == [other] and find_rule(path, "a") is None


def test_rule_from_options_alerts_on_the_log_without_a_delivering_channel() -> None:
    plain = rule_from_options("a", "energy")
    assert plain.channels == Channels(log=True) and plain.mode == "instant" and plain.tags == []
    hooked = rule_from_options("b", "energy", webhook="https://h.example/x", email=["a@b.c"], tags=["eu"],
                               digest="1h", language="en")
    assert hooked.channels == Channels(webhook="https://h.example/x", email=["a@b.c"])
    assert (hooked.mode, hooked.digest, hooked.tags, hooked.language) == ("digest", "1h", ["eu"], "en")
    assert rule_from_options("c", "x", topic=True, log=True).channels == Channels(topic=True, log=True)
    with pytest.raises(ValidationError):
        rule_from_options("c", "x", slack="not a url")


def test_rule_search_is_newsflow_search_with_the_rules_filters() -> None:
    rule = Rule(name="r", query="energy", source="Reuters", entity="Mark Rutte", language="EN", tags=["eu", "nato"],
                channels=Channels(log=True))
    assert rule_search(rule, limit=5) == build_search("energy", source="Reuters", entity="Mark Rutte", language="EN",
                                                      feed_tags=["eu", "nato"], limit=5, all_copies=True)


def test_rule_matches_searches_a_rules_query_and_filters_or_a_bare_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(environ={"NEWSFLOW_ALERTS_RULES_FILE": str(tmp_path / "alerts.yaml")})
    save_rules(tmp_path / "alerts.yaml", [Rule(name="r", query="energy", source="Reuters", tags=["eu"],
                                               channels=Channels(log=True))])
    searches: list[tuple[str, dict[str, Any]]] = []

    def search_index(settings: object, query: str, **options: Any) -> SearchResult:
        searches.append((query, options))
        return SearchResult(total=0, took_ms=1, hits=[])

    monkeypatch.setattr(pipeline.search, "search_index", search_index)
    week = timedelta(days=7)
    assert rule_matches(settings, name="r", since=week, limit=3) == SearchResult(total=0, took_ms=1, hits=[])
    assert rule_matches(settings, query="flood") is not None
    assert rule_matches(settings, name="missing") is None
    assert searches == [
        ("energy", {"since": week, "limit": 3, "source": "Reuters", "entity": None, "language": None,
                    "feed_tags": ["eu"]}),
        ("flood", {"since": None, "limit": 20}),
    ]
    with pytest.raises(ValueError):
        rule_matches(settings, name="r", query="flood")
