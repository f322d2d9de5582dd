"""pipeline.status: the parts of ``newsflow status`` that need no server (the result, counter totals, feed state,
the run state, a part that fails). The parts that ask Kafka and Elasticsearch are integration tests
(tests/integration/test_ops_status.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from connectors.state import FeedState, StateStore
from pipeline import status
from pipeline.errors import KafkaUnavailable
from pipeline.settings import Settings, load_settings
from pipeline.status import Status

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path)})


def test_a_status_is_ok_until_a_part_is_down() -> None:
    st = Status(checked_at=NOW, parts={"kafka": {"up": True}})
    assert st.ok and st.as_dict() == {"ok": True, "down": [], "checked_at": NOW.isoformat(), "kafka": {"up": True}}
    st.down.append("kafka")
    assert not st.ok and st.as_dict()["down"] == ["kafka"]


def test_a_failing_part_carries_its_error_and_is_down_only_when_it_needs_a_server() -> None:
    def unreachable() -> dict[str, object]:
        raise KafkaUnavailable("cannot reach Kafka at 127.0.0.1:9")

    st = Status(checked_at=NOW)
    status._guard(st, "kafka", unreachable)
    status._guard(st, "feeds", unreachable, down_on_error=False)
    status._guard(st, "stack", lambda: {"local": False})
    assert st.parts["kafka"] == {"error": "KafkaUnavailable: cannot reach Kafka at 127.0.0.1:9"}
    assert "error" in st.parts["feeds"] and st.parts["stack"] == {"local": False}
    assert st.down == ["kafka"]


def test_metric_totals_sum_newsflow_counters_over_their_labels() -> None:
    page = (
        "# TYPE newsflow_stage_messages_total counter\n"
        'newsflow_stage_messages_total{stage="clean",status="ok"} 3.0\n'
        'newsflow_stage_messages_total{stage="enrich",status="ok"} 4.0\n'
        "# TYPE newsflow_sink_pending_documents gauge\n"
        "newsflow_sink_pending_documents 9.0\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total 1.5\n"
    )
    assert status._metric_totals(page) == {"newsflow_stage_messages_total": 7.0}


def test_feeds_part_counts_healthy_and_failing_feeds(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert status._feeds(settings) == {"total": 0, "ok": 0, "failing": 0, "feeds": []}
    store = StateStore(tmp_path / "feeds")
    store.save(FeedState(url="https://a.example/rss", last_status="ok", items_published=5))
    failing = FeedState(url="https://b.example/rss")
    failing.record_failure("timeout", "no answer in 2 s", NOW)
    store.save(failing)
    part = status._feeds(settings)
    assert (part["total"], part["ok"], part["failing"]) == (2, 1, 1)
    [row] = [r for r in part["feeds"] if r["health"] == "failing"]
    assert row["last_error_kind"] == "timeout" and row["last_error_at"] == NOW.isoformat()


def test_no_run_state_is_absent_not_down(tmp_path: Path) -> None:
    assert status._run(_settings(tmp_path), NOW) == ({"state": "absent"}, False)
