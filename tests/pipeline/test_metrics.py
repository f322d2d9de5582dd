"""pipeline.metrics: every collector registered once under ``newsflow_<component>_<what>_<unit>``, on /metrics."""

from __future__ import annotations

import socket

import httpx
from prometheus_client import REGISTRY

import pipeline.metrics as metrics
from pipeline.metrics import DEAD_LETTERS, serve_metrics

COLLECTORS = [getattr(metrics, name) for name in metrics.__all__ if name != "serve_metrics"]


def test_every_collector_is_registered_under_a_newsflow_name() -> None:
    registered = {family.name for family in REGISTRY.collect()}
    for collector in COLLECTORS:
        [family] = collector.describe()
        assert family.name.startswith("newsflow_") and family.name in registered


def test_a_count_is_observed_per_label_set() -> None:
    def letters(stage: str) -> float:
        return REGISTRY.get_sample_value("newsflow_dlq_letters_total", {"stage": stage, "kind": "test_kind"}) or 0.0

    before, other = letters("test_stage"), letters("test_other")
    DEAD_LETTERS.labels(stage="test_stage", kind="test_kind").inc()
    assert letters("test_stage") == before + 1
    assert letters("test_other") == other


def test_serve_metrics_exposes_the_collectors_on_loopback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve_metrics(port)
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    assert page.status_code == 200 and "newsflow_feed_items_published_total" in page.text
