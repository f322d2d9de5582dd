"""The alert rules file (pipeline.alerts.rules): round trip and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.alerts.rules import Channels, Rule, add_rule, find_rule, load_rules, remove_rule, save_rules
from pipeline.errors import SettingsError


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
