"""What the commands print (pipeline/present.py), from library results built by hand: no server, no CLI runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.feedlist import FeedSpec
from connectors.service import PollSummary
from connectors.state import FeedState
from pipeline import present
from pipeline.alerts.rules import Channels, Rule, RuleStats
from pipeline.dlq_tools import DlqEntry, ReplayResult
from pipeline.index import IndexSetup
from pipeline.reindex import ReindexResult
from pipeline.runner import Progress
from pipeline.schemas import DeadLetter
from pipeline.search import Hit, SearchResult
from pipeline.stack.service import ServiceStatus
from pipeline.status import Status

T = datetime(2026, 2, 4, 12, 0, tzinfo=UTC)


def _hit(**kw: object) -> Hit:
    base: dict[str, object] = {
        "id": "a1", "index": "news-2026.02", "score": 1.0,
        "document": {"title": "NATO signals compromise", "source": "Example News",
                     "published_at": "2026-02-04T12:00:00Z", "url": "https://example.com/a"},
        "highlight": {"body": ["Mark **Rutte**\n  arrived"]}, "copies": 3,
    }
    return Hit(**{**base, **kw})  # type: ignore[arg-type]


# -- search ------------------------------------------------------------------------------------------------------
def test_format_hit_shows_title_source_time_copies_url_fragment() -> None:
    assert present.format_hit(1, _hit()) == (" 1. NATO signals compromise\n"
                                             "    Example News · 2026-02-04T12:00:00Z · 3 copies · https://example.com/a\n"
                                             "    Mark **Rutte** arrived")


def test_format_hit_falls_back_to_domain_ingest_time_canonical_url_and_no_title() -> None:
    hit = _hit(document={"source_domain": "b.example", "ingested_at": "2026-02-04T11:00:00Z",
                         "canonical_url": "https://b.example/x"}, highlight={}, copies=1)
    assert present.format_hit(12, hit) == ("12. (no title)\n    b.example · 2026-02-04T11:00:00Z · https://b.example/x\n"
                                           "    ")


def test_hit_fragment_prefers_summary_then_body_then_title_then_the_summary_start() -> None:
    both = {"title": ["<em>T</em>"], "body": ["the body"], "summary": ["the  summary"]}
    assert present.hit_fragment(_hit(highlight=both)) == "the summary"
    assert present.hit_fragment(_hit(highlight={"title": ["<em>T</em>"], "body": ["the body"]})) == "the body"
    assert present.hit_fragment(_hit(highlight={"title": ["<em>T</em>"]})) == "<em>T</em>"
    long = _hit(highlight={}, document={"summary": "word " * 100, "body": "not this"})
    assert present.hit_fragment(long) == ("word " * 36)[:present.FRAGMENT_CHARS]
    assert present.hit_fragment(_hit(highlight={}, document={})) == ""


def test_search_lines_as_text_and_json() -> None:
    result = SearchResult(total=17, took_ms=8, hits=[_hit(), _hit(id="a2", copies=1)])
    lines = present.search_lines(result, as_json=False, all_copies=False)
    assert lines[0].startswith(" 1. NATO") and lines[1].startswith(" 2. NATO")
    assert lines[-1] == "-- 2 shown (stories, copies collapsed) of 17 matching articles, 8 ms"
    assert present.search_lines(result, as_json=False, all_copies=True)[-1] == (
        "-- 2 shown (articles) of 17 matching articles, 8 ms")
    docs = [json.loads(line) for line in present.search_lines(result, as_json=True, all_copies=False)]
    assert [(d["_id"], d["copies"], d["title"]) for d in docs] == [("a1", 3, "NATO signals compromise"),
                                                                   ("a2", 1, "NATO signals compromise")]
    assert present.rule_test_lines(result, as_json=False)[-1] == "-- 2 stories shown of 17 matching articles"
    assert len(present.rule_test_lines(result, as_json=True)) == 2


def test_highlight_tags() -> None:
    assert present.highlight_tags(as_json=True, terminal=True) == ("<em>", "</em>")
    assert present.highlight_tags(as_json=False, terminal=True) == ("\033[1m", "\033[0m")
    assert present.highlight_tags(as_json=False, terminal=False) == ("**", "**")


def test_index_lines() -> None:
    setup = IndexSetup(template="news-template", version=3, analyzer="english", action="created",
                       current_index="news-2026.02", notes=["analyzer changed"])
    assert present.index_setup_lines(setup, "news") == [
        "template news-template v3 (created), analyzer english, current index news-2026.02 behind alias news",
        "note: analyzer changed"]
    status = {"template": "news-template", "shipped_version": 3, "alias": "news", "cluster": {"status": "green"},
              "installed_version": 2, "text_analyzer": "english", "documents": 42,
              "indices": [{"index": "news-2026.02", "docs": 42, "size": "1mb", "health": "green"},
                          {"index": "news-2026.01", "docs": 0, "size": None, "health": "yellow"}]}
    assert present.index_status_lines(status, as_json=False) == [
        "cluster {'status': 'green'}; template news-template installed v2 (shipped v3), analyzer english",
        "  news-2026.02                    42 docs       1mb  green",
        "  news-2026.01                     0 docs            yellow",
        "alias news: 42 documents"]
    assert json.loads(present.index_status_lines(status, as_json=True)[0]) == status


# -- stack -------------------------------------------------------------------------------------------------------
def test_stack_lines() -> None:
    statuses = [ServiceStatus("kafka", "running", 9092, 12, "4.0.2", 12_345_678, "/x/kafka.log"),
                ServiceStatus("elasticsearch", "stopped", 9200, None, None, 0, "/x/es.log")]
    assert present.stack_status_lines(statuses, as_json=False) == [
        "kafka          running  port 9092  version 4.0.2    data     12.3 MB  pid 12      log /x/kafka.log",
        "elasticsearch  stopped  port 9200  version ?        data      0.0 MB  pid -       log /x/es.log"]
    [doc] = present.stack_status_lines(statuses, as_json=True)
    assert json.loads(doc)["kafka"]["pid"] == 12
    assert present.stack_action_lines({"kafka": "started", "elasticsearch": "running"}) == [
        "kafka: started", "elasticsearch: running"]
    assert present.log_tail_lines("/x/kafka.log", "a\nb") == ["==> /x/kafka.log <==", "a\nb"]


# -- newsflow run ------------------------------------------------------------------------------------------------
def test_run_lines() -> None:
    assert present.run_left_over_stopped("worker-1", 12, killed=True) == (
        "worker-1: stopped pid 12 left by an earlier run (killed)")
    assert present.run_left_over_stopped("connector", 7, killed=False) == (
        "connector: stopped pid 7 left by an earlier run")
    assert present.run_child_started("worker-1", 4242, 7000, Path("/d/logs/worker-1.log")) == (
        "worker-1: started (pid 4242), http://127.0.0.1:7000/health|ready|metrics, log /d/logs/worker-1.log")
    assert present.run_child_started("connector", None, 0, Path("/d/logs/connector.log")) == (
        "connector: started (pid ?), no port, log /d/logs/connector.log")
    assert present.run_ready_lines("news", "http://127.0.0.1:9200", started_stack=True) == [
        "search with:  newsflow search 'NATO'   (Elasticsearch alias 'news' at http://127.0.0.1:9200)",
        "Ctrl-C stops the connector, then the workers, then the local stack."]
    assert present.run_ready_lines("news", "http://es:9200", started_stack=False)[1] == (
        "Ctrl-C stops the connector, then the workers.")
    assert present.run_progress(Progress(120, 100, 98, 1.26, 3)) == (
        "items published 120 | articles enriched 100 | searchable 98 | ingest->index lag 1.3s | alerts 3")
    assert present.run_progress(Progress()) == (
        "items published 0 | articles enriched 0 | searchable 0 | ingest->index lag - | alerts 0")
    assert present.run_child_gave_up("connector", 1, "newsflow: error: x", Path("/d/c.log")) == (
        "connector keeps exiting (rc 1); giving up. Last error: newsflow: error: x (log /d/c.log)")
    assert present.run_child_gave_up("worker-2", None, None, Path("/d/w.log")) == (
        "worker-2 keeps exiting (rc None); giving up. Last error: - (log /d/w.log)")
    assert present.RUN_STOPPING == "stopping: connector first (flush, save feed state), then workers (commit offsets)"


# -- feeds and the connector -------------------------------------------------------------------------------------
def test_feed_lines_show_health_errors_and_moves() -> None:
    spec = FeedSpec(url="https://b.example/rss")
    failing = FeedState(url=spec.url, title="B", last_status="error", error_count=3, last_error="x" * 300,
                        last_error_kind="timeout", last_error_at=T, moved_to="https://b2.example/rss",
                        next_check_at=T)
    assert present.feed_lines(spec, failing, as_json=False) == [
        "B\n  url https://b.example/rss\n  FAILING x3; items published 0; last success never; "
        "next check 2026-02-04 12:00:00Z",
        f"  last error 2026-02-04 12:00:00Z [timeout] {'x' * 200}",
        "  moved permanently to https://b2.example/rss"]
    fine = FeedState(url=spec.url, last_status="not_modified", items_published=5, last_success_at=T,
                     next_check_at=T + timedelta(minutes=15))
    named = FeedSpec(url=spec.url, name="Bee")
    assert present.feed_lines(named, fine, as_json=False) == [
        "Bee\n  url https://b.example/rss\n  ok; items published 5; last success 2026-02-04 12:00:00Z; "
        "next check 2026-02-04 12:15:00Z"]
    assert present.feed_lines(spec, FeedState(url=spec.url), as_json=False)[0].startswith(
        "https://b.example/rss\n  url https://b.example/rss\n  not polled yet; items published 0")
    [doc] = present.feed_lines(spec, failing, as_json=True)
    assert json.loads(doc) == {
        "url": spec.url, "name": "B", "status": "error", "last_success_at": None,
        "last_error_at": "2026-02-04T12:00:00+00:00", "last_error_kind": "timeout", "last_error": "x" * 300,
        "error_count": 3, "items_published": 0, "moved_to": "https://b2.example/rss",
        "next_check_at": "2026-02-04T12:00:00+00:00"}


@pytest.mark.parametrize(("last_status", "health"), [
    ("ok", "ok"), ("not_modified", "ok"), ("error", "failing"), (None, "not polled")])
def test_feed_state_health(last_status: str | None, health: str) -> None:
    assert FeedState(url="https://a.example/rss", last_status=last_status).health == health


def test_feed_list_edits_and_poll_summary() -> None:
    path = Path("/x/feeds.yaml")
    assert present.feed_added(True, "https://a.example/rss", path) == "added: https://a.example/rss (/x/feeds.yaml)"
    assert present.feed_added(False, "https://a.example/rss", path) == (
        "already listed: https://a.example/rss (/x/feeds.yaml)")
    assert present.feeds_imported(2, 1, path) == "imported 2 feeds, 1 already listed (/x/feeds.yaml)"
    summary = PollSummary(feeds_ok=4, feeds_failed=1, feeds_not_modified=2, items_published=30, items_skipped=7,
                          article_failures=1, took_s=2.345, failures={"https://b.example/rss": "timeout: " + "y" * 400})
    total = ("feeds ok 4 (not modified 2), feeds failed 1, items published 30, items skipped as already seen 7, "
             "article fetches failed 1 (2.3s)")
    assert present.poll_summary(summary) == total
    assert present.poll_lines(summary) == [f"failed: https://b.example/rss: {('timeout: ' + 'y' * 400)[:300]}", total]


# -- operations --------------------------------------------------------------------------------------------------
def _status(down: list[str]) -> Status:
    parts: dict[str, dict[str, Any]] = {
        "stack": {"local": True, "kafka": {"state": "running", "pid": 11, "port": 9092},
                  "elasticsearch": {"state": "stopped", "pid": None, "port": 9200}},
        "kafka": {"up": True, "bootstrap": "127.0.0.1:9092"},
        "elasticsearch": {"up": True, "cluster_status": "green", "url": "http://127.0.0.1:9200", "alias": "news",
                          "documents": 42},
        "run": {"state": "running", "pid": 100, "uptime_s": 3725.0, "children": [
            {"name": "connector", "pid": 101, "port": 6068, "state": "running", "ready": True, "uptime_s": 90000,
             "restarts": 0, "last_error": None},
            {"name": "w0", "pid": 102, "port": 6066, "state": "restarted", "ready": False, "uptime_s": None,
             "restarts": 2, "last_error": "boom"}]},
        "consumer_lag": {"group": "newsflow", "total": 7, "topics": {"news.raw": {"lag": 7, "partitions": [
            {"partition": 0, "lag": 3}, {"partition": 1, "lag": 4}]}}},
        "throughput": {"window_s": 60, "per_minute": {"connector": 5, "clean": None, "index": 2}},
        "feeds": {"total": 2, "ok": 1, "failing": 1, "feeds": [
            {"url": "https://a.example/rss", "health": "ok"},
            {"url": "https://b.example/rss", "health": "failing", "error_count": 3, "last_error_kind": "timeout",
             "last_error": "timed out"}]},
        "dead_letters": {"total": 3, "by_stage": {"clean": 2, "sink": 1}, "replayed": 1},
        "alerts": {"sent": 4, "on_topic": 1},
    }
    return Status(checked_at=T, parts=parts, down=down)


def test_status_lines_every_part() -> None:
    assert present.status_lines(_status([]), as_json=False) == [
        "newsflow status at 2026-02-04 12:00:00Z: OK",
        "stack kafka          running  pid 11  port 9092",
        "stack elasticsearch  stopped  pid -  port 9200",
        "kafka          up  127.0.0.1:9092",
        "elasticsearch  up (green)  http://127.0.0.1:9200",
        "run            pid 100, up 1h02m05s",
        "  connector    pid 101     port 6068  running    ready     up 1d01h  restarts 0",
        "  w0           pid 102     port 6066  restarted  NOT READY up -  restarts 2  last error: boom",
        "consumer lag   group newsflow: 7 messages",
        "  news.raw                        7   by partition 0:3 1:4",
        "per minute     connector 5  clean -  index 2",
        "feeds          2 (1 ok, 1 failing)",
        "  FAILING x3 https://b.example/rss: [timeout] timed out",
        "index          alias news: 42 documents",
        "dead letters   3 (clean 2, sink 1); replayed 1",
        "alerts sent    4 (on news.alerts 1)"]
    [doc] = present.status_lines(_status(["run"]), as_json=True)
    assert json.loads(doc)["ok"] is False and json.loads(doc)["down"] == ["run"]


def test_status_lines_with_parts_down() -> None:
    parts: dict[str, dict[str, Any]] = {
        "kafka": {"error": "KafkaUnavailable: no broker"}, "elasticsearch": {"error": "ConnectionError: x"},
        "run": {"state": "absent", "note": "no run state"}, "consumer_lag": {"error": "Kafka unreachable"},
        "dead_letters": {"error": "Kafka unreachable"}, "alerts": {"error": "Kafka unreachable"}}
    lines = present.status_lines(Status(checked_at=T, parts=parts, down=["kafka", "elasticsearch"]), as_json=False)
    assert lines == [
        "newsflow status at 2026-02-04 12:00:00Z: DOWN: kafka, elasticsearch",
        "kafka          DOWN KafkaUnavailable: no broker  ",
        "elasticsearch  DOWN ConnectionError: x  ",
        "run            absent: no run state",
        "consumer lag   Kafka unreachable",
        "index          alias -: none yet (nothing indexed)",
        "dead letters   Kafka unreachable",
        "alerts sent    Kafka unreachable"]


def _letter(**kw: object) -> DeadLetter:
    base: dict[str, object] = {"stage": "clean", "kind": "too_short", "error": "article discarded: too_short",
                               "topic": "news.raw", "partition": 1, "offset": 17, "key": "k1",
                               "payload": '{"a": 1}', "failed_at": T}
    return DeadLetter(**{**base, **kw})  # type: ignore[arg-type]


def test_dlq_lines() -> None:
    entries = [DlqEntry(0, 5, T, _letter()), DlqEntry(0, 6, T, None, "bad json"),
               DlqEntry(0, 7, T, _letter(topic=None, stage="sink", kind="document_rejected", payload="not json"),
                        replayed=True)]
    assert present.dlq_list_lines(entries, as_json=False) == [
        "       5  2026-02-04 12:00:00Z  clean     too_short          news.raw[1]@17  article discarded: too_short",
        "       6  2026-02-04 12:00:00Z  unreadable: bad json",
        "       7  2026-02-04 12:00:00Z  sink      document_rejected  -  article discarded: too_short [replayed]",
        "-- 3 dead letters, 1 replayed"]
    listed = [json.loads(line) for line in present.dlq_list_lines(entries, as_json=True)]
    assert [d.get("stage") for d in listed] == ["clean", None, "sink"] and "payload" not in listed[0]
    # Where the letter is on news.dlq (for `dlq show`), apart from where its message came from.
    assert [(d["dlq_offset"], d.get("offset")) for d in listed] == [(5, 17), (6, None), (7, 17)]
    assert listed[0]["topic"] == "news.raw" and listed[0]["partition"] == 1 and listed[0]["dlq_partition"] == 0
    shown = present.dlq_entry_lines(entries[0], as_json=False)
    assert "timestamp: 2026-02-04T12:00:00+00:00" in shown and "stage: clean" in shown and "replayed: False" in shown
    assert not any(line.startswith("payload_base64") for line in shown)  # None values are left out
    assert shown[-2:] == ["payload:", '{\n  "a": 1\n}']  # JSON payloads indented
    assert present.dlq_entry_lines(entries[2], as_json=False)[-2:] == ["payload:", "not json"]
    assert json.loads(present.dlq_entry_lines(entries[0], as_json=True)[0])["payload"] == '{"a": 1}'
    result = ReplayResult(replayed=[entries[0]], skipped=[(entries[1], "unreadable"), (entries[2], "replayed")])
    assert present.dlq_replay_lines(result) == [
        "replayed 5 (clean/too_short) -> news.raw",
        "skipped 6: unreadable",
        "-- 1 replayed, 1 skipped, 1 already replayed before"]


def test_reindex_lines() -> None:
    result = ReindexResult(alias="news", documents_before=10, documents_after=12, records_read=13, invalid=1,
                           new_indices=["r1.news-2026.01"], removed_indices=["news-2026.01"], kept_indices=["old"],
                           took_s=1.5)
    assert present.reindex_lines(result, as_json=False) == [
        "alias news: 10 documents before, 12 after (13 records of news.enriched read, 1 invalid, 0 rejected) in 1.5s",
        "  new      r1.news-2026.01",
        "  removed  news-2026.01",
        "  kept     old (no month in its name; still behind the alias)"]
    assert json.loads(present.reindex_lines(result, as_json=True)[0])["documents_after"] == 12


# -- alert rules -------------------------------------------------------------------------------------------------
def test_rule_lines() -> None:
    path = Path("/x/alerts.yaml")
    digest = Rule(name="daily", query="drought OR flood", mode="digest", digest="1h", secret="s",
                  channels=Channels(webhook="https://h.example/x", log=True))
    instant = Rule(name="energy", query="energy truce", channels=Channels(topic=True))
    assert present.rule_added(digest, path) == "added 'daily' (digest every 1h; webhook, log) to /x/alerts.yaml"
    assert present.rule_added(instant, path) == "added 'energy' (instant; topic) to /x/alerts.yaml"
    stats = {"daily": RuleStats(matches=4, last_fired="2026-02-04T12:00:00+00:00")}
    assert present.rule_lines([digest, instant], stats, as_json=False, path=path) == [
        "daily: drought OR flood\n    digest 1h · webhook, log · 4 matches · last fired 2026-02-04T12:00:00+00:00",
        "energy: energy truce\n    instant · topic · 0 matches · last fired never"]
    assert present.rule_lines([instant], None, as_json=False, path=path) == [
        "energy: energy truce\n    instant · topic · matches unknown (Kafka unreachable)"]
    [doc] = [json.loads(line) for line in present.rule_lines([digest], None, as_json=True, path=path)]
    assert doc["has_secret"] is True and "secret" not in doc and doc["matches"] is None
    assert present.rule_lines([], {}, as_json=False, path=path) == ["no rules in /x/alerts.yaml"]
    assert present.rule_lines([], {}, as_json=True, path=path) == []
