"""The alert rules file (pipeline.alerts.rules): round trip and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.alerts.rules import Channels, Rule, load_rules, save_rules
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
