"""Alerts without servers: the presearcher's reading of queries, rules file, payload, signature, digests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.alerts.digest import DigestWindows
from pipeline.alerts.matcher import Match, rule_search
from pipeline.alerts.present import alert_event, alert_id, email_bodies, slack_body, webhook_body
from pipeline.alerts.query import ALWAYS, anchors, evaluate, presearch_condition
from pipeline.alerts.rules import Channels, Rule, load_rules, save_rules
from pipeline.errors import SettingsError
from pipeline.schemas import DigestItem, EnrichedArticle, Entity
from pipeline.search import build_search


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


def test_rule_search_is_search_request_plus_ids() -> None:
    rule = Rule(name="r", query="energy", source="Reuters", language="EN", tags=["world"],
                channels=Channels(log=True))
    body = rule_search(rule, ids=["x", "y"])
    plain = build_search("energy", source="Reuters", language="EN", feed_tags=["world"], all_copies=True)
    assert body["query"]["bool"]["must"] == plain["query"]["bool"]["must"]
    assert body["query"]["bool"]["filter"][:-1] == plain["query"]["bool"]["filter"]
    assert body["query"]["bool"]["filter"][-1] == {"ids": {"values": ["x", "y"]}}


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


def _article(**kw: object) -> EnrichedArticle:
    base: dict[str, object] = dict(
        id="a1", story_id="s1", feed_url="http://f", url="https://example.com/1", title="Energy <truce> holds",
        body="The energy truce holds.", source="Reuters", ingested_at=datetime.now(UTC), text_fingerprint="fp",
        entities=[Entity(name="Kyiv", label="GPE", count=1), Entity(name="Mark Rutte", label="PERSON", count=3)],
        entity_names=["Kyiv", "Mark Rutte"])
    return EnrichedArticle.model_validate(base | kw)


def test_payload_alert_id_and_renderings() -> None:
    rule = Rule(name="energy", query="energy truce", channels=Channels(log=True))
    match = Match(rule, _article(), {"body": ["The <em>energy</em> <em>truce</em> holds."]})
    event = alert_event(match, copies=3, indexed_at=datetime.now(UTC), top_entities=1)
    assert event.alert_id == alert_id("energy", "s1") == hashlib.sha256(b"energy\x1fs1").hexdigest()[:32]
    assert alert_id("energy", "s1") != alert_id("energy", "s2") != alert_id("other", "s1")
    assert event.entities == ["Mark Rutte"] and event.copies == 3 and event.fragments
    body = json.loads(webhook_body(rule, [event]))
    assert body["kind"] == "alert" and body["alert"]["alert_id"] == event.alert_id
    assert "*energy*" in json.loads(slack_body(rule, [event]))["text"]
    plain, html = email_bodies(rule, [event])
    assert "<em>" not in plain and "Energy <truce> holds" in plain
    assert "Energy &lt;truce&gt; holds" in html and "<em>energy</em>" in html


def test_signature_is_hmac_of_exact_body() -> None:
    from pipeline.alerts.channels import sign

    body = b'{"kind":"alert"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


class _Changelog:
    """Records what DigestWindows writes to the table's changelog topic (the Kafka side has its own test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object, int, str]] = []

    async def send(self, *, key: str, value: object, partition: int, key_serializer: str,
                   value_serializer: str) -> asyncio.Future[None]:
        self.sent.append((key, value, partition, value_serializer))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_digest_windows_group_per_rule_in_their_partition() -> None:
    now = [0.0]
    table = SimpleNamespace(data={}, changelog_topic=_Changelog())
    windows = DigestWindows(table, clock=lambda: now[0])
    rule = Rule(name="d", query="q", mode="digest", digest="30m", channels=Channels(log=True))
    other = Rule(name="e", query="q", mode="digest", digest="1h", channels=Channels(log=True))
    for n in range(3):
        event = alert_event(Match(rule, _article().model_copy(update={"story_id": f"s{n}"})), copies=1,
                            indexed_at=None, top_entities=3).model_copy(update={"article_id": f"a{n}"})
        assert await windows.add(DigestItem(rule="d", alert=event, interval_s=1800), partition=2)
    assert not await windows.add(DigestItem(rule="d", alert=event, interval_s=1800), partition=2)  # a replay
    await windows.add(DigestItem(rule="e", alert=alert_event(Match(other, _article()), copies=1, indexed_at=None,
                                                             top_entities=3), interval_s=3600), partition=1)
    assert windows.due({1, 2}) == [] and len(windows) == 4
    assert {(k, p) for k, _v, p, _s in table.changelog_topic.sent} == {("d", 2), ("e", 1)}
    now[0] = 1800
    assert windows.due({0, 1}) == []  # another worker owns partition 2
    [(name, partition, alerts)] = windows.due({2})
    assert (name, partition) == ("d", 2) and [a.article_id for a in alerts] == ["a0", "a1", "a2"]
    assert json.loads(webhook_body(rule, alerts))["kind"] == "digest"
    await windows.remove("d", 2)
    assert table.changelog_topic.sent[-1] == ("d", None, 2, "raw")  # a tombstone
    assert len(windows) == 1 and windows.due({0, 1, 2}, now=3600)[0][0] == "e"


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
