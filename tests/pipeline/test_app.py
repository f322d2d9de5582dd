"""pipeline.app: the Faust app each worker builds, with every topic and table declared once (no broker needed to
build it; running it is what the integration tests do)."""

from __future__ import annotations

from pathlib import Path

from pipeline.app import create_app
from pipeline.settings import load_settings


def test_topics_have_their_partitions_and_every_table_one(tmp_path: Path) -> None:
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path), "NEWSFLOW_KAFKA_PARTITIONS": "3",
                                      "NEWSFLOW_KAFKA_TOPIC_PREFIX": "t1."})
    app = create_app(settings, worker_name="w2", web_port=0)
    topics = {name: (getattr(app, f"{name}_topic").get_topic_name(), getattr(app, f"{name}_topic").partitions)
              for name in ("raw", "clean", "deduped", "enriched", "dlq", "indexed", "alerts", "digests")}
    assert topics == {"raw": ("t1.news.raw", 3), "clean": ("t1.news.clean", 1), "deduped": ("t1.news.deduped", 3),
                      "enriched": ("t1.news.enriched", 3), "dlq": ("t1.news.dlq", 1),
                      "indexed": ("t1.news.indexed", 1), "alerts": ("t1.news.alerts", 1),
                      "digests": ("t1.news.digests", 1)}
    assert {name: table.partitions for name, table in app.tables.items()} == {
        "dedupe-urls": 1, "dedupe-fingerprints": 1, "dedupe-signatures": 1, "alerts-sent": 1, "alerts-digests": 1}


def test_each_worker_has_its_own_state_directory_and_client_id(tmp_path: Path) -> None:
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path)})
    app = create_app(settings, worker_name="w2", web_port=0)
    assert Path(app.conf.datadir) == tmp_path / "faust" / settings.pipeline.app_id / "w2"
    assert Path(app.conf.datadir).parent.is_dir()
    assert app.conf.broker_client_id == f"{settings.kafka.client_id}-w2"
    assert app.conf.id == settings.pipeline.app_id and not app.conf.web_enabled
    assert create_app(settings, web_port=6123).conf.web_port == 6123


def test_the_alert_tables_are_declared_only_with_the_index_stage(tmp_path: Path) -> None:
    settings = load_settings(environ={"NEWSFLOW_DATA_DIR": str(tmp_path), "NEWSFLOW_PIPELINE_INDEX_ENABLED": "false"})
    assert sorted(create_app(settings, web_port=0).tables) == ["dedupe-fingerprints", "dedupe-signatures",
                                                                "dedupe-urls"]
