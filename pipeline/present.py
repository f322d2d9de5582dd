"""What the ``newsflow`` commands print: every line, table and JSON document, built from what the library returns.

The commands (pipeline/cli.py, pipeline/alerts/cli.py) parse their arguments, call the library and write these
lines with ``typer.echo``, as `newsflow run`'s supervisor (pipeline/runner.py) writes its own as it goes; nothing
here does I/O. Each function returns the lines (``*_lines``) or the one text a command prints. JSON output is one
document per line unless noted; its ``ensure_ascii`` differs between commands, kept as each command has always
printed it.

What an *alert* says (webhook, Slack, email bodies) is not here: that is :mod:`pipeline.alerts.present`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: a command imports what it prints and no more
    from connectors.feedlist import FeedSpec
    from connectors.service import PollSummary
    from connectors.state import FeedState
    from pipeline.alerts.rules import Rule, RuleStats
    from pipeline.dlq_tools import DlqEntry, ReplayResult
    from pipeline.index import IndexSetup
    from pipeline.reindex import ReindexResult
    from pipeline.runner import Progress
    from pipeline.schemas import CleanArticle, EnrichedArticle
    from pipeline.search import Hit, SearchResult
    from pipeline.stack.service import ServiceStatus
    from pipeline.status import Status

__all__ = [
    "FRAGMENT_CHARS",
    "RUN_STOPPING",
    "article_json",
    "dlq_entry_lines",
    "dlq_list_lines",
    "dlq_replay_lines",
    "enrichment_json",
    "feed_added",
    "feed_lines",
    "feeds_imported",
    "format_hit",
    "highlight_tags",
    "hit_fragment",
    "index_setup_lines",
    "index_status_lines",
    "log_tail_lines",
    "poll_lines",
    "poll_summary",
    "reindex_lines",
    "rule_added",
    "rule_lines",
    "rule_test_lines",
    "run_child_gave_up",
    "run_child_started",
    "run_left_over_stopped",
    "run_progress",
    "run_ready_lines",
    "search_lines",
    "stack_action_lines",
    "stack_status_lines",
    "status_lines",
]

FRAGMENT_CHARS = 180  # a hit without a highlight shows this much of its summary (the highlighter's fragment size)
_BOLD = ("\033[1m", "\033[0m")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "never"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 86400}d{s % 86400 // 3600:02d}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


# -- stack -------------------------------------------------------------------------------------------------------
def stack_action_lines(result: Mapping[str, str]) -> list[str]:
    """``stack up`` / ``stack down``: what was done to each server."""
    return [f"{name}: {what}" for name, what in result.items()]


def stack_status_lines(statuses: Sequence[ServiceStatus], *, as_json: bool) -> list[str]:
    if as_json:
        return [json.dumps({s.name: s.as_dict() for s in statuses})]
    return [f"{s.name:<14} {s.state:<8} port {s.port:<5} version {s.version or '?':<8} "
            f"data {s.data_bytes / 1e6:8.1f} MB  pid {s.pid or '-':<7} log {s.log_file}" for s in statuses]


def log_tail_lines(log_file: Path | str, tail: str) -> list[str]:
    """``stack logs``: a header naming the file (as ``tail`` does for several files), then its last lines."""
    return [f"==> {log_file} <==", tail]


# -- newsflow run ------------------------------------------------------------------------------------------------
RUN_STOPPING = "stopping: connector first (flush, save feed state), then workers (commit offsets)"


def run_left_over_stopped(name: str, pid: int, *, killed: bool) -> str:
    """A child of an earlier, crashed ``run``, stopped before this run starts its own."""
    return f"{name}: stopped pid {pid} left by an earlier run" + (" (killed)" if killed else "")


def run_child_started(name: str, pid: int | None, port: int, log_file: Path) -> str:
    """One child started: its pid, where its endpoints are (port 0: none), its log."""
    where = f"http://127.0.0.1:{port}/health|ready|metrics" if port else "no port"
    return f"{name}: started (pid {'?' if pid is None else pid}), {where}, log {log_file}"


def run_ready_lines(alias: str, es_url: str, *, started_stack: bool) -> list[str]:
    """Once every child is started: how to search, and what Ctrl-C stops."""
    return [f"search with:  newsflow search 'NATO'   (Elasticsearch alias '{alias}' at {es_url})",
            "Ctrl-C stops the connector, then the workers" + (", then the local stack." if started_stack else ".")]


def run_progress(progress: Progress) -> str:
    """The line ``run`` prints every few seconds."""
    lag = "-" if progress.lag_s is None else f"{progress.lag_s:.1f}s"
    return (f"items published {progress.items_published} | articles enriched {progress.articles_enriched} | "
            f"searchable {progress.documents_indexed} | ingest->index lag {lag} | alerts {progress.alerts}")


def run_child_gave_up(name: str, rc: int | None, last_error: str | None, log_file: Path) -> str:
    """A child that kept exiting: ``run`` stops."""
    return f"{name} keeps exiting (rc {rc}); giving up. Last error: {last_error or '-'} (log {log_file})"


# -- index and search --------------------------------------------------------------------------------------------
def index_setup_lines(setup: IndexSetup, alias: str) -> list[str]:
    return [f"template {setup.template} v{setup.version} ({setup.action}), analyzer {setup.analyzer}, "
            f"current index {setup.current_index} behind alias {alias}",
            *(f"note: {note}" for note in setup.notes)]


def index_status_lines(status: Mapping[str, Any], *, as_json: bool) -> list[str]:
    if as_json:
        return [json.dumps(status)]
    lines = [f"cluster {status['cluster']}; template {status['template']} installed v{status['installed_version']} "
             f"(shipped v{status['shipped_version']}), analyzer {status.get('text_analyzer')}"]
    lines += [f"  {row['index']:<24} {row['docs']:>9} docs  {row['size'] or '':>8}  {row['health']}"
              for row in status["indices"]]
    lines.append(f"alias {status['alias']}: {status['documents']} documents")
    return lines


def highlight_tags(*, as_json: bool, terminal: bool) -> tuple[str, str]:
    """What marks a matched term: bold on a terminal, ``<em>`` in JSON (as Elasticsearch gives it), else ``**``."""
    if as_json:
        return "<em>", "</em>"
    return _BOLD if terminal else ("**", "**")


def hit_fragment(hit: Hit) -> str:
    """The passage shown under a hit: the highlighted summary, else body, else title; else the summary's start."""
    for name in ("summary", "body", "title"):
        if hit.highlight.get(name):
            return " ".join(hit.highlight[name][0].split())
    text = hit.document.get("summary") or hit.document.get("body") or ""
    return " ".join(str(text).split())[:FRAGMENT_CHARS]


def format_hit(n: int, hit: Hit) -> str:
    """Three lines for a terminal: rank and title; source, time, copies and URL; the highlighted fragment."""
    doc = hit.document
    source = doc.get("source") or doc.get("source_domain") or "?"
    copies = f" · {hit.copies} copies" if hit.copies > 1 else ""
    url = doc.get("url") or doc.get("canonical_url") or ""
    return f"{n:>2}. {hit.title}\n    {source} · {hit.time or '?'}{copies} · {url}\n    {hit_fragment(hit)}"


def _hit_json(hit: Hit) -> str:
    return json.dumps(hit.as_dict(), ensure_ascii=False, default=str)


def search_lines(result: SearchResult, *, as_json: bool, all_copies: bool) -> list[str]:
    """``newsflow search``: one JSON object per hit, or each hit's three lines and a count."""
    if as_json:
        return [_hit_json(hit) for hit in result.hits]
    what = "articles" if all_copies else "stories, copies collapsed"
    return [*(format_hit(n, hit) for n, hit in enumerate(result.hits, 1)),
            f"-- {len(result.hits)} shown ({what}) of {result.total} matching articles, {result.took_ms} ms"]


def rule_test_lines(result: SearchResult, *, as_json: bool) -> list[str]:
    """``newsflow alerts test``: like :func:`search_lines`, with its own count line."""
    if as_json:
        return [_hit_json(hit) for hit in result.hits]
    return [*(format_hit(n, hit) for n, hit in enumerate(result.hits, 1)),
            f"-- {len(result.hits)} stories shown of {result.total} matching articles"]


# -- feeds and the connector -------------------------------------------------------------------------------------
def feed_added(added: bool, url: str, path: Path) -> str:
    return f"{'added' if added else 'already listed'}: {url} ({path})"


def feeds_imported(added: int, present: int, path: Path) -> str:
    return f"imported {added} feeds, {present} already listed ({path})"


_HEALTH_TEXT = {"ok": "ok", "not polled": "not polled yet"}


def feed_lines(spec: FeedSpec, state: FeedState, *, as_json: bool) -> list[str]:
    """``feeds list``: one feed and its health (a JSON object, or a block of two to four lines)."""
    if as_json:
        return [json.dumps({"url": spec.url, "name": spec.name or state.title, "status": state.last_status,
                            "last_success_at": state.last_success_at and state.last_success_at.isoformat(),
                            "last_error_at": state.last_error_at and state.last_error_at.isoformat(),
                            "last_error_kind": state.last_error_kind, "last_error": state.last_error,
                            "error_count": state.error_count, "items_published": state.items_published,
                            "moved_to": state.moved_to,
                            "next_check_at": state.next_check_at and state.next_check_at.isoformat()})]
    health = _HEALTH_TEXT.get(state.health, f"FAILING x{state.error_count}")
    lines = [f"{spec.name or state.title or spec.url}\n  url {spec.url}\n  {health}; items published "
             f"{state.items_published}; last success {_when(state.last_success_at)}; "
             f"next check {_when(state.next_check_at)}"]
    if state.last_error:
        lines.append(f"  last error {_when(state.last_error_at)} [{state.last_error_kind}] {state.last_error[:200]}")
    if state.moved_to:
        lines.append(f"  moved permanently to {state.moved_to}")
    return lines


def poll_summary(summary: PollSummary) -> str:
    """The totals of a poll round or a connector run, on one line."""
    return (f"feeds ok {summary.feeds_ok} (not modified {summary.feeds_not_modified}), "
            f"feeds failed {summary.feeds_failed}, items published {summary.items_published}, "
            f"items skipped as already seen {summary.items_skipped}, "
            f"article fetches failed {summary.article_failures} ({summary.took_s:.1f}s)")


def poll_lines(summary: PollSummary) -> list[str]:
    """``ingest --once``: each failed feed, then the totals."""
    return [*(f"failed: {url}: {error[:300]}" for url, error in summary.failures.items()), poll_summary(summary)]


# -- stages run by hand ------------------------------------------------------------------------------------------
def article_json(article: CleanArticle) -> str:
    """``newsflow clean``: the whole CleanArticle, indented (one document over several lines)."""
    return json.dumps(article.model_dump(mode="json"), ensure_ascii=False, indent=2)


def enrichment_json(article: EnrichedArticle) -> str:
    """``newsflow enrich``: what the enrich stage adds, indented."""
    return json.dumps(article.model_dump(mode="json", include={"entities", "entity_names", "keywords", "summary"}),
                      ensure_ascii=False, indent=2)


# -- operations: status, dead letters, reindex -------------------------------------------------------------------
def status_lines(status: Status, *, as_json: bool) -> list[str]:
    """``newsflow status``: one JSON object, or one line per part (and per run child, topic, failing feed)."""
    if as_json:
        return [json.dumps(status.as_dict(), ensure_ascii=False, default=str)]
    p = status.parts
    lines = [f"newsflow status at {status.checked_at:%Y-%m-%d %H:%M:%SZ}: "
             + ("OK" if status.ok else "DOWN: " + ", ".join(status.down))]

    def err(part: str) -> str | None:
        error: str | None = p.get(part, {}).get("error")
        return error

    stack = p.get("stack", {})
    if stack.get("local"):
        for name in ("kafka", "elasticsearch"):
            s = stack.get(name, {})
            lines.append(f"stack {name:<14} {s.get('state')}  pid {s.get('pid') or '-'}  port {s.get('port')}")
    k, e = p.get("kafka", {}), p.get("elasticsearch", {})
    lines.append(f"kafka          {'up' if k.get('up') else 'DOWN ' + str(err('kafka'))}  {k.get('bootstrap', '')}")
    es_state = f"up ({e.get('cluster_status')})" if e.get("up") else f"DOWN {err('elasticsearch')}"
    lines.append(f"elasticsearch  {es_state}  {e.get('url', '')}")
    run = p.get("run", {})
    if run.get("state") == "running":
        lines.append(f"run            pid {run['pid']}, up {_duration(run.get('uptime_s'))}")
        for c in run.get("children", []):
            ready = "ready" if c.get("ready") else "NOT READY"
            lines.append(f"  {c['name']:<12} pid {c['pid']:<7} port {c['port']:<5} {c['state']:<10} {ready:<9} "
                         f"up {_duration(c.get('uptime_s'))}  restarts {c['restarts']}"
                         + (f"  last error: {c['last_error'][:120]}" if c.get("last_error") else ""))
    else:
        note = f": {run['note']}" if run.get("note") else ""
        lines.append(f"run            {run.get('state') or err('run')}{note}")
    lag = p.get("consumer_lag", {})
    if "error" in lag:
        lines.append(f"consumer lag   {lag['error']}")
    else:
        lines.append(f"consumer lag   group {lag.get('group')}: {lag.get('total')} messages")
        for topic, t in lag.get("topics", {}).items():
            parts = " ".join(f"{r['partition']}:{r['lag']}" for r in t["partitions"])
            lines.append(f"  {topic:<24} {t['lag']:>8}   by partition {parts}")
    tp = p.get("throughput", {})
    if "per_minute" in tp:
        rates = "  ".join(f"{k_} {'-' if v is None else v}" for k_, v in tp["per_minute"].items())
        lines.append(f"per minute     {rates}")
    feeds = p.get("feeds", {})
    if "total" in feeds:
        lines.append(f"feeds          {feeds['total']} ({feeds['ok']} ok, {feeds['failing']} failing)")
        for f in feeds["feeds"]:
            if f["health"] == "failing":
                lines.append(f"  FAILING x{f['error_count']} {f['url']}: [{f['last_error_kind']}] "
                             f"{(f['last_error'] or '')[:120]}")
    docs = e.get("documents")
    lines.append(f"index          alias {e.get('alias', '-')}: "
                 + (f"{docs} documents" if docs is not None else "none yet (nothing indexed)"))
    dl = p.get("dead_letters", {})
    if "total" in dl:
        stages = ", ".join(f"{k_} {v}" for k_, v in dl["by_stage"].items()) or "none"
        lines.append(f"dead letters   {dl['total']} ({stages}); replayed {dl['replayed']}")
    else:
        lines.append(f"dead letters   {dl.get('error')}")
    al = p.get("alerts", {})
    sent = f"{al['sent']} (on news.alerts {al['on_topic']})" if "sent" in al else al.get("error")
    lines.append(f"alerts sent    {sent}")
    return lines


def dlq_list_lines(entries: Sequence[DlqEntry], *, as_json: bool) -> list[str]:
    """``dlq list``: one line per letter (its offset first, for ``dlq show``) and a count."""
    if as_json:
        return [json.dumps(e.as_dict(), ensure_ascii=False) for e in entries]
    lines = []
    for e in entries:
        when = e.timestamp.strftime("%Y-%m-%d %H:%M:%SZ")
        mark = " [replayed]" if e.replayed else ""
        if e.letter is None:
            lines.append(f"{e.offset:>8}  {when}  unreadable: {e.unreadable}")
            continue
        source = f"{e.letter.topic}[{e.letter.partition}]@{e.letter.offset}" if e.letter.topic else "-"
        lines.append(f"{e.offset:>8}  {when}  {e.letter.stage:<9} {e.letter.kind:<18} {source}  "
                     f"{e.letter.error[:100]}{mark}")
    lines.append(f"-- {len(entries)} dead letters, {sum(e.replayed for e in entries)} replayed")
    return lines


def dlq_entry_lines(entry: DlqEntry, *, as_json: bool) -> list[str]:
    """``dlq show``: every field of the letter, then its payload (indented when it is JSON)."""
    if as_json:
        return [json.dumps(entry.as_dict(payload=True), ensure_ascii=False)]
    data = entry.as_dict(payload=True)
    payload = data.pop("payload", None)
    lines = [f"{k}: {v}" for k, v in data.items() if v is not None]
    if payload is not None:
        with contextlib.suppress(ValueError):  # not JSON: shown as it is
            payload = json.dumps(json.loads(payload), ensure_ascii=False, indent=2)
        lines += ["payload:", payload]
    return lines


def dlq_replay_lines(result: ReplayResult) -> list[str]:
    lines = [f"replayed {e.offset} ({e.letter.stage}/{e.letter.kind}) -> {e.letter.topic}"
             for e in result.replayed if e.letter is not None]
    # Letters replayed by an earlier run are the normal case on a long-lived news.dlq: counted, not listed.
    earlier = [e for e, _why in result.skipped if e.replayed]
    lines += [f"skipped {e.offset}: {why}" for e, why in result.skipped if not e.replayed]
    lines.append(f"-- {len(result.replayed)} replayed, {len(result.skipped) - len(earlier)} skipped, "
                 f"{len(earlier)} already replayed before")
    return lines


def reindex_lines(result: ReindexResult, *, as_json: bool) -> list[str]:
    if as_json:
        return [json.dumps(result.as_dict())]
    lines = [f"alias {result.alias}: {result.documents_before} documents before, {result.documents_after} after "
             f"({result.records_read} records of news.enriched read, {result.invalid} invalid, "
             f"{result.rejected} rejected) in {result.took_s}s"]
    lines += [f"  new      {index}" for index in result.new_indices]
    lines += [f"  removed  {index}" for index in result.removed_indices]
    lines += [f"  kept     {index} (no month in its name; still behind the alias)" for index in result.kept_indices]
    return lines


# -- alert rules -------------------------------------------------------------------------------------------------
def rule_added(rule: Rule, path: Path) -> str:
    every = f" every {rule.digest}" if rule.digest else ""
    return f"added {rule.name!r} ({rule.mode}{every}; {', '.join(rule.channels.names())}) to {path}"


def rule_lines(rules: Sequence[Rule], stats: Mapping[str, RuleStats] | None, *, as_json: bool, path: Path) -> list[str]:
    """``alerts list``: each rule with its counts; ``stats`` None: the counts could not be read (Kafka down).

    ``path`` is the rules file, named when it holds no rule."""
    from pipeline.alerts.rules import RuleStats

    lines = []
    for rule in rules:
        st = (stats or {}).get(rule.name, RuleStats())
        if as_json:
            doc = rule.model_dump(mode="json", exclude={"secret"}) | {"has_secret": bool(rule.secret)}
            counts = st.model_dump() if stats is not None else {"matches": None, "last_fired": None}
            lines.append(json.dumps(doc | counts, ensure_ascii=False))
            continue
        mode = f"digest {rule.digest}" if rule.mode == "digest" else "instant"
        counts_text = (f"{st.matches} matches · last fired {st.last_fired or 'never'}" if stats is not None
                       else "matches unknown (Kafka unreachable)")
        lines.append(f"{rule.name}: {rule.query}\n    {mode} · {', '.join(rule.channels.names())} · {counts_text}")
    if not rules and not as_json:
        lines.append(f"no rules in {path}")
    return lines
