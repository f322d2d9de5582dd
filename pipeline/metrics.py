"""Every Prometheus collector newsflow has, declared once and observed where the work happens.

Names follow ``newsflow_<component>_<what>_<unit>``; labels stay small and closed
(``status``, ``kind``, ``stage``, ``channel``). Per-feed detail lives in feed state, not in labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "ALERTS_SENT",
    "ALERT_CANDIDATES",
    "ALERT_DECIDED_LOCALLY",
    "ALERT_LATENCY",
    "ALERT_MATCHES",
    "ALERT_MATCH_SECONDS",
    "ALERT_POSTER_STARTS",
    "ALERT_RETRIES",
    "ARTICLES_DEDUPED",
    "CLEAN_FIELDS_TRUNCATED",
    "CLEAN_HTML_FLATTENED",
    "DEAD_LETTERS",
    "ELASTIC_WAITING",
    "END_TO_END_LAG",
    "FEEDS_FAILING",
    "FEED_ARTICLE_FETCHES",
    "FEED_FETCHES",
    "FEED_ITEMS_PUBLISHED",
    "FEED_ITEMS_SKIPPED",
    "FEED_PARSE_ERRORS",
    "FEED_POLL_SECONDS",
    "FEED_PUBLISH_ERRORS",
    "FETCH_GAPS",
    "OFFLOAD_POOL_RESTARTS",
    "PUBLISH_TO_INDEX_LAG",
    "SINK_BACKLOG",
    "SINK_BULK_SECONDS",
    "SINK_DOCUMENTS",
    "STAGE_ERRORS",
    "STAGE_MESSAGES",
    "STAGE_SECONDS",
    "STALL_REPAIRS",
    "serve_metrics",
]

# connectors
FEED_FETCHES = Counter("newsflow_feed_fetches_total", "Feed fetches by outcome", ["status", "kind"])
FEED_PARSE_ERRORS = Counter("newsflow_feed_parse_errors_total", "Feeds that could not be parsed", ["kind"])
FEED_ITEMS_PUBLISHED = Counter("newsflow_feed_items_published_total", "Items acknowledged by Kafka on news.raw")
FEED_ITEMS_SKIPPED = Counter("newsflow_feed_items_skipped_total", "Items skipped as already published")
FEED_PUBLISH_ERRORS = Counter("newsflow_feed_publish_errors_total", "Items Kafka did not acknowledge (retried)")
FEED_ARTICLE_FETCHES = Counter("newsflow_feed_article_fetches_total", "Full-article page fetches", ["status"])
FEED_POLL_SECONDS = Histogram("newsflow_feed_poll_seconds", "One feed refresh, fetch to state saved")
FEEDS_FAILING = Gauge("newsflow_feed_failing", "Feeds whose last poll failed (backing off)")

# stream stages
STAGE_MESSAGES = Counter("newsflow_stage_messages_total", "Messages handled per stage", ["stage", "status"])
STAGE_ERRORS = Counter("newsflow_stage_errors_total", "Messages a stage failed on", ["stage", "kind"])
STAGE_SECONDS = Histogram("newsflow_stage_seconds", "Time spent per article in a stage", ["stage"])
ARTICLES_DEDUPED = Counter("newsflow_dedupe_decisions_total", "Dedupe decisions", ["decision"])
CLEAN_HTML_FLATTENED = Counter("newsflow_clean_html_flattened_total",
                               "Cleaned articles whose HTML was nested past the parsers' depth and flattened first")
CLEAN_FIELDS_TRUNCATED = Counter("newsflow_clean_fields_truncated_total",
                                 "Article fields cut to their bounds by clean (title, subtitle, summary, body)",
                                 ["field"])
DEAD_LETTERS = Counter("newsflow_dlq_letters_total", "Messages sent to news.dlq", ["stage", "kind"])
STALL_REPAIRS = Counter("newsflow_consumer_stall_repairs_total",
                        "Partitions sought back because fetched records never reached their stream (stall guard)")
FETCH_GAPS = Counter("newsflow_consumer_fetch_gaps_total",
                     "Offset jumps seen by Faust's fetch loop: records dropped on the way to their stream, fetched "
                     "again (commit guard, stall guard), never counted as processed", ["topic"])
OFFLOAD_POOL_RESTARTS = Counter("newsflow_offload_pool_restarts_total",
                                "Offload pools replaced after one of their processes died")

# sink
SINK_DOCUMENTS = Counter("newsflow_sink_documents_total", "Documents by outcome", ["status"])
SINK_BULK_SECONDS = Histogram("newsflow_sink_bulk_seconds", "Bulk request latency")
END_TO_END_LAG = Histogram(
    "newsflow_sink_end_to_end_lag_seconds",
    "From ingested (fetched) to indexed",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 900, 3600),
)
SINK_BACKLOG = Gauge("newsflow_sink_pending_documents", "Documents waiting for the next bulk")
PUBLISH_TO_INDEX_LAG = Histogram(
    "newsflow_sink_publish_to_index_lag_seconds",
    "From the feed's published time to indexed (feeds often publish late: a long tail is normal)",
    buckets=(1, 5, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
ELASTIC_WAITING = Gauge("newsflow_sink_elastic_waiting", "1 while the sink waits for Elasticsearch to come back")

# alerts
ALERT_POSTER_STARTS = Counter("newsflow_alerts_poster_starts_total",
                              "Webhook poster processes started (more than one per agent: a poster died)")
ALERTS_SENT = Counter("newsflow_alerts_sent_total", "Alert deliveries by channel and final status (ok, dead_letter)",
                      ["channel", "status"])
ALERT_MATCHES = Counter("newsflow_alerts_matches_total", "Rule/story matches: new alerts, repeats suppressed",
                        ["outcome"])
ALERT_RETRIES = Counter("newsflow_alerts_retries_total", "Delivery attempts that failed and were retried", ["channel"])
ALERT_RULE_RELOADS = Counter("newsflow_alerts_rule_reloads_total",
                             "Reads of the alert rules file after a change: ok, or error (previous rules kept)",
                             ["outcome"])
ALERT_RULES = Gauge("newsflow_alerts_rules", "Alert rules loaded in this worker")
ALERT_CANDIDATES = Counter("newsflow_alerts_candidates_total", "Rules the presearcher sent to Elasticsearch")
ALERT_DECIDED_LOCALLY = Counter("newsflow_alerts_decided_locally_total",
                                "Candidate rules the presearcher decided alone (exact queries), without Elasticsearch")
ALERT_MATCH_SECONDS = Histogram("newsflow_alerts_match_seconds", "Matching one batch of indexed articles")
ALERT_LATENCY = Histogram(
    "newsflow_alerts_latency_seconds",
    "From indexed (Elasticsearch acknowledged) to delivered, per channel",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 3600),
)


def serve_metrics(port: int) -> None:
    """Expose /metrics on ``port`` (0 disables it)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
