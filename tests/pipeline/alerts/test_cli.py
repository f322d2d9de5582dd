"""`newsflow alerts add/list` (pipeline.alerts.cli) without Elasticsearch or Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.alerts.rules import Channels, Rule, load_rules, save_rules


def test_add_without_elasticsearch_uses_the_lucene_parser(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    env = {"NEWSFLOW_ES_URL": "http://127.0.0.1:1", "NEWSFLOW_ALERTS_RULES_FILE": str(tmp_path / "alerts.yaml"),
           "NEWSFLOW_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["alerts", "add", "bad", "--query", "energy AND ) truce"], env=env)
    assert result.exit_code == 2 and "unexpected  ')' at position 11" in result.stderr, result.stderr
    result = CliRunner().invoke(app, ["alerts", "add", "bad", "--query", "energy AND (truce"], env=env)
    assert result.exit_code == 2 and "at the end" in result.stderr, result.stderr
    assert not (tmp_path / "alerts.yaml").exists()
    result = CliRunner().invoke(app, ["alerts", "add", "good", "--query", "energy AND (truce OR talks)"], env=env)
    assert result.exit_code == 0, result.stderr
    assert [r.name for r in load_rules(tmp_path / "alerts.yaml")] == ["good"]


def test_alerts_list_without_kafka_still_lists_the_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import pipeline.alerts.stats
    from pipeline.cli import app
    from pipeline.errors import KafkaUnavailable

    def unreachable(settings: object) -> None:  # what read_stats raises without a broker (kafka-python takes 30 s)
        raise KafkaUnavailable("cannot reach Kafka at 127.0.0.1:9")

    monkeypatch.setattr(pipeline.alerts.stats, "read_stats", unreachable)
    path = tmp_path / "alerts.yaml"
    save_rules(path, [Rule(name="a", query="energy", channels=Channels(log=True))])
    env = {"NEWSFLOW_ALERTS_RULES_FILE": str(path), "NEWSFLOW_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["alerts", "list", "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    [doc] = [json.loads(line) for line in result.stdout.splitlines()]
    assert doc["name"] == "a" and doc["matches"] is None and "alert counts unavailable" in result.stderr
    human = CliRunner().invoke(app, ["alerts", "list"], env=env)
    assert human.exit_code == 0 and "matches unknown" in human.stdout
