"""The Faust app: one app object per worker with every topic and table declared once (like quixstreams' app).

::

    news.raw (N) --clean--> news.clean (1) --dedupe[tables]--> news.deduped (N) --enrich--> news.enriched (N)
                                                                                              --index--> Elasticsearch
    every stage --> news.dlq

Every topic carries UTF-8 JSON objects (the pydantic models of :mod:`pipeline.schemas`): Faust moves raw
bytes and the agents validate/serialise with ``model_validate_json``/``model_dump_json``, so any Kafka client
can read and write these topics. The dedupe tables hold JSON dicts in changelog topics
``<app_id>-dedupe-<name>-changelog`` with one partition, like the one ``news.clean`` partition they follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from pipeline.schemas import (
    ALERTS_SENT_TABLE,
    ALERTS_TOPIC,
    CLEAN_TOPIC,
    DEDUPED_TOPIC,
    DIGESTS_TOPIC,
    DLQ_TOPIC,
    ENRICHED_TOPIC,
    INDEXED_TOPIC,
    RAW_TOPIC,
)
from pipeline.security import faust_credentials
from pipeline.settings import Settings
from pipeline.table_store import NewsflowTable

__all__ = ["NewsflowApp", "create_app"]


class NewsflowApp(faust.App):
    """A ``faust.App`` that also holds newsflow's settings, topics and dedupe tables."""

    settings: Settings
    _table_cache: Any = None

    def table_cache(self) -> Any:
        """The one RocksDB block cache of this worker's tables (``pipeline.table_block_cache_mb``), made on first use:
        a ``rocksdict.Cache`` (rocksdict is imported only with ``rocksdb://``)."""
        if self._table_cache is None:
            import rocksdict

            self._table_cache = rocksdict.Cache(self.settings.pipeline.table_block_cache_mb << 20)
        return self._table_cache

    def declare(self, settings: Settings) -> None:
        """Declare the topics and tables (once per app)."""
        self.settings = settings
        n = settings.kafka.partitions
        self.raw_topic = self._json_topic(settings.kafka.topic(RAW_TOPIC), n)
        self.clean_topic = self._json_topic(settings.kafka.topic(CLEAN_TOPIC), 1)
        self.deduped_topic = self._json_topic(settings.kafka.topic(DEDUPED_TOPIC), n)
        self.enriched_topic = self._json_topic(settings.kafka.topic(ENRICHED_TOPIC), n)
        self.dlq_topic = self._json_topic(settings.kafka.topic(DLQ_TOPIC), 1)
        # One partition each, like news.clean: the dedupe agent's state must be one global view.
        self.url_table = self._json_table("dedupe-urls", "canonical URL -> UrlRecord")
        self.fingerprint_table = self._json_table("dedupe-fingerprints", "text fingerprint -> article id")
        self.signature_table = self._json_table("dedupe-signatures", "article id -> SignatureRecord")
        # Alerting is one partition too, like dedupe: its tables with N partitions and standbys stalled a
        # two-worker group's table recovery after a kill -9 (tests/integration/test_service.py), and one
        # consumer matches far faster (hundreds of articles/s) than the pipeline indexes.
        self.indexed_topic = self._json_topic(settings.kafka.topic(INDEXED_TOPIC), 1)
        self.alerts_topic = self._json_topic(settings.kafka.topic(ALERTS_TOPIC), 1)
        # Open digest windows go through news.digests (key = rule name).
        self.digests_topic = self._json_topic(settings.kafka.topic(DIGESTS_TOPIC), 1)
        if settings.pipeline.index_enabled:
            # Declared only with the alerts agents that read news.indexed and news.digests: a table that no
            # agent's topic co-partitions with stalls the recovery of a group of several workers.
            # Co-partitioned with news.indexed (key = story id): once per (rule, story), recovered on restart.
            self.alerted_table = self._json_table(ALERTS_SENT_TABLE, "rule + story id -> first alert")
            # Co-partitioned with news.digests: recovered from the changelog after a crash, restart or rebalance.
            self.digest_table = self._json_table("alerts-digests", "rule -> its open digest window")

    def _json_topic(self, name: str, partitions: int) -> faust.TopicT:
        return self.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                          partitions=partitions)

    def _json_table(self, name: str, help_: str, partitions: int = 1) -> Any:
        # JSON keys and values: str keys come back as str after a changelog recovery (raw would give bytes).
        schema: faust.Schema[str, Any] = faust.Schema(key_serializer="json", value_serializer="json")
        return self.Table(name, default=None, partitions=partitions, schema=schema, help=help_)


def create_app(settings: Settings, *, worker_name: str = "worker", web_port: int | None = None) -> NewsflowApp:
    """Build the Faust app for ``settings`` (no agents yet: :func:`pipeline.agents.register_agents` adds them).

    Args:
        settings: the loaded settings; ``pipeline.app_id`` is the consumer group: workers with the same id share
            the partitions.
        worker_name: names this worker's local state directory, so several workers can run on one host.
        web_port: Faust's web server port (default ``pipeline.web_port``; 0 turns it off).
    """
    p = settings.pipeline
    port = p.web_port if web_port is None else web_port
    datadir: Path = settings.data_path / "faust" / p.app_id / worker_name
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = NewsflowApp(
        p.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka.servers],
        broker_credentials=faust_credentials(settings.kafka),
        store=p.store,
        datadir=str(datadir),
        autodiscover=False,
        web_enabled=port > 0,
        web_port=port or 6066,
        web_host="127.0.0.1",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_disable_leader=True,
        processing_guarantee=p.processing_guarantee,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_client_id=f"{settings.kafka.client_id}-{worker_name}",
        broker_commit_every=p.commit_every,
        broker_commit_interval=p.commit_interval_s,
        broker_session_timeout=p.session_timeout_s,
        broker_heartbeat_interval=min(3.0, p.session_timeout_s / 3),
        # Rejoining after a rebalance waits for every member at most this long; the loop stays free (the
        # blocking work runs in the pool), so a live worker always rejoins well within it.
        broker_rebalance_timeout=max(60.0, p.session_timeout_s * 2),
        producer_acks=-1,
        # A standby copy of the dedupe tables on another worker makes fail-over fast (no full changelog replay).
        table_standby_replicas=1,
        # RocksDB tables with the settings' bounded memory (pipeline/table_store.py), not Faust's per-table defaults.
        Table=NewsflowTable,
    )
    app.declare(settings)
    return app
