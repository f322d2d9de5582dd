"""The alert payload (pipeline.alerts.present): alert id, webhook, Slack and e-mail renderings."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pipeline.alerts.matcher import Match
from pipeline.alerts.present import alert_event, alert_id, email_bodies, slack_body, webhook_body
from pipeline.alerts.rules import Channels, Rule
from testkit.alerts_corpus import sample_article


def test_payload_alert_id_and_renderings() -> None:
    rule = Rule(name="energy", query="energy truce", channels=Channels(log=True))
    match = Match(rule, sample_article(), {"body": ["The <em>energy</em> <em>truce</em> holds."]})
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


def test_webhook_bodies_are_the_compact_utf8_json_of_the_events() -> None:
    rule = Rule(name="kiev", query="Kyiv OR Kiev", channels=Channels(log=True))
    article = sample_article().model_copy(update={"title": "Київ: «перемир'я» \"energy\" — 能源"})
    event = alert_event(Match(rule, article, {"title": ["<em>Київ</em>"]}), copies=2, indexed_at=datetime.now(UTC),
                        top_entities=2)
    expected = {"kind": "alert", "alert": event.model_dump(mode="json")}
    body = webhook_body(rule, [event])
    assert body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert json.loads(body) == expected and "Київ".encode() in body  # UTF-8, not \\u escapes
    digest = Rule(name="kiev", query="Kyiv OR Kiev", mode="digest", digest="1h", channels=Channels(log=True))
    expected_digest = {"kind": "digest", "rule": "kiev", "query": "Kyiv OR Kiev",
                       "alerts": [event.model_dump(mode="json")] * 2}
    assert json.loads(webhook_body(digest, [event, event])) == expected_digest
    assert webhook_body(digest, [event, event]) == json.dumps(expected_digest, ensure_ascii=False,
                                                              separators=(",", ":")).encode("utf-8")
