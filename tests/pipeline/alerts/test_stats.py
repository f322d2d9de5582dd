"""pipeline.alerts.stats: rule counts folded from the ``alerts-sent`` changelog. Records are kafka-python
``ConsumerRecord`` values built here; reading the changelog from the broker is an integration test
(tests/integration/test_ops_status.py)."""

from __future__ import annotations

import json

from kafka.consumer.fetcher import ConsumerRecord

from pipeline.alerts import stats
from pipeline.alerts.rules import RuleStats
from pipeline.settings import load_settings


def _record(offset: int, key: object, value: object | None) -> ConsumerRecord:
    raw_key = key if isinstance(key, bytes) else json.dumps(key).encode()
    raw_value = None if value is None else json.dumps(value).encode()
    return ConsumerRecord("newsflow-alerts-sent-changelog", 0, None, offset, 0, 0, raw_key, raw_value, [], None,
                          len(raw_key), len(raw_value or b""), -1)


def test_the_changelog_is_fausts_name_for_the_table() -> None:
    settings = load_settings(environ={"NEWSFLOW_PIPELINE_APP_ID": "news-test"})
    assert stats.sent_changelog(settings) == "news-test-alerts-sent-changelog"


def test_matches_are_stories_alerted_and_last_fired_the_latest_time() -> None:
    records = [
        _record(0, "energy|s1", {"alert_id": "x1", "article_id": "a1", "at": "2026-02-04T12:00:00+00:00"}),
        _record(1, "energy|s2", {"alert_id": "x2", "article_id": "a2", "at": "2026-02-04T13:00:00+00:00"}),
        _record(2, "energy|s1", {"alert_id": "x1", "article_id": "a1", "at": "2026-02-04T11:00:00+00:00"}),
        _record(3, "truce|s3", {"alert_id": "x3", "article_id": "a3", "at": "2026-02-04T09:00:00+00:00"}),
        _record(4, "truce|s3", None),  # a tombstone: the entry is gone
        _record(5, "truce|s4", ["not", "a", "dict"]),  # an entry without a time still counts
        _record(6, b"not json", {"at": "2026-02-04T14:00:00+00:00"}),  # not one of ours
        _record(7, 42, {"at": "2026-02-04T14:00:00+00:00"}),
    ]
    assert stats._rule_stats(records) == {
        "energy": RuleStats(matches=2, last_fired="2026-02-04T13:00:00+00:00"),
        "truce": RuleStats(matches=1, last_fired=None),
    }
    assert stats._rule_stats([]) == {}
