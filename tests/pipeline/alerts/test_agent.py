"""The alert agent's rules watcher (pipeline.alerts.agent): reloads a changed file, keeps the rules on a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.alerts.rules import Channels, Rule, load_rules, save_rules
from pipeline.errors import SettingsError


def test_rules_watcher_reloads_changes_and_keeps_rules_on_a_bad_file(tmp_path: Path) -> None:
    import os

    from pipeline.alerts.agent import RulesWatcher
    from pipeline.metrics import ALERT_RULE_RELOADS, ALERT_RULES

    def reloads(outcome: str) -> float:
        return ALERT_RULE_RELOADS.labels(outcome)._value.get()

    path = tmp_path / "alerts.yaml"
    watcher = RulesWatcher(path, msearch_chunk=10)
    assert watcher.rules == {} and not watcher.reload()
    save_rules(path, [Rule(name="a", query="energy", channels=Channels(log=True))])
    ok, errors = reloads("ok"), reloads("error")
    assert watcher.reload() and list(watcher.rules) == ["a"] and len(watcher.matcher.rules) == 1
    assert reloads("ok") == ok + 1 and ALERT_RULES._value.get() == 1
    assert not watcher.reload()  # unchanged
    path.write_text("rules: [{name: a}]\n")
    os.utime(path, ns=(1, 1))  # a different stamp even within the file system's time resolution
    assert not watcher.reload() and list(watcher.rules) == ["a"]  # invalid: the previous rules stay
    assert reloads("error") == errors + 1 and ALERT_RULES._value.get() == 1  # counted, still one rule
    save_rules(path, [Rule(name="b", query="flood", channels=Channels(log=True))])
    assert watcher.reload() and list(watcher.rules) == ["b"]


def test_a_rules_file_that_is_not_text_is_a_clear_error_and_keeps_the_rules(tmp_path: Path) -> None:
    from pipeline.alerts.agent import RulesWatcher

    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n- name: a\n  query: energy\n  channels: {log: true}\n", encoding="utf-8")
    watcher = RulesWatcher(path, msearch_chunk=50)
    watcher.reload()
    assert set(watcher.rules) == {"a"}
    path.write_bytes(b"rules:\n- name: \xed\xa0\x80\xff\n")  # not UTF-8
    with pytest.raises(SettingsError, match="not UTF-8 text"):
        load_rules(path)
    assert watcher.reload() is False and set(watcher.rules) == {"a"}  # logged, previous rules kept
