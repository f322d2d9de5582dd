"""Render bench/RESULTS.md from the recorded benchmark results in bench/results/*.json.

Each ``bench/results/<name>.json`` is one run of one benchmark, written by ``bench/record.py``: the command, the
date (UTC), the machine load before and after, the number of cores, and the JSON object the benchmark printed on
its last line. :data:`BENCHMARKS` says which figures of that object are shown and what their targets are, so
"met" is computed here, never typed by hand.

    python bench/render_results.py            # rewrite bench/RESULTS.md
    python bench/render_results.py --check    # exit 1 when bench/RESULTS.md differs from the render
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BENCHMARKS", "Benchmark", "Figure", "load_results", "render"]

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
README_MD = HERE.parent / "README.md"


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark's JSON: ``path`` is a dotted key path; ``target`` is (op, value) or None."""

    label: str
    path: str
    unit: str = ""
    target: tuple[str, float | bool] | None = None


@dataclass(frozen=True)
class Benchmark:
    title: str
    figures: list[Figure] = field(default_factory=list)


# The benchmarks RESULTS.md shows, in the order of the article's path. A result file's name is a key here
# (one benchmark script may appear under several names, one per configuration, e.g. sink with short bodies).
BENCHMARKS: dict[str, Benchmark] = {
    "connector_throughput": Benchmark("Connector: 1,000 feeds × 50 items into news.raw", [
        Figure("cold round (every item new)", "cold_items_per_s", "items/s", (">=", 5000)),
        Figure("cold round", "cold_polls_per_s", "polls/s"),
        Figure("304 round (nothing changed)", "not_modified_polls_per_s", "polls/s", (">=", 200)),
        Figure("new-items round (+2 per feed)", "new_items_polls_per_s", "polls/s"),
    ]),
    "feed_parse": Benchmark("Feed parsing: lxml fast path vs feedparser, per item", [
        Figure("RSS, fast path", "feeds.generated_rss.fast_ms_per_item", "ms"),
        Figure("RSS, feedparser", "feeds.generated_rss.feedparser_ms_per_item", "ms"),
        Figure("Atom, fast path", "feeds.generated_atom.fast_ms_per_item", "ms"),
        Figure("Atom, feedparser", "feeds.generated_atom.feedparser_ms_per_item", "ms"),
    ]),
    "stage_clean": Benchmark("Clean stage alone (300–1,500-word pages with full page furniture)", [
        Figure("CPU-bound throughput of one core", "cpu_bound_articles_per_s_per_core", "articles/s", (">=", 30)),
    ]),
    "stage_dedupe": Benchmark("Dedupe stage alone (2,000 articles, 20 % edited copies, 10 % replays)", [
        Figure("MinHash signature (runs in the clean stage's pool)", "signature_per_s", "articles/s"),
        Figure("decision (tables + LSH query, on the event loop)", "decide_per_s", "articles/s"),
        Figure("memory of the dedupe state with pipeline.store memory:// (RSS growth per article held)",
               "memory_store_bytes_per_article", "B/article"),
    ]),
    "stage_enrich": Benchmark("Enrich stage alone (spaCy small model, NER only), one process", [
        Figure("fresh text (~975 words, no paragraph seen before), per core", "articles_per_s_per_core",
               "articles/s", (">=", 15)),
        Figure("fresh text, words per core", "words_per_s_per_core", "words/s"),
        Figure("20 % edited copies, per core", "copies.articles_per_s_per_core", "articles/s"),
        Figure("mention cache hit rate, 20 % edited copies", "cache_hit_rate_copies"),
        Figure("mention cache hit rate, demo feeds", "cache_hit_rate_demo"),
        # Not 0 in budget mode: the sentences read after the budget come from a small pool and repeat (docs/stages.md).
        Figure("mention cache hit rate, fresh text", "fresh.cache_hit_rate"),
        Figure("NER budget (pipeline.ner_max_words)", "ner_max_words", "words"),
        Figure("full-text NER's entities the budget also finds (name+label)",
               "budget_vs_full_text.recall_vs_full_text"),
        Figure("the budget's entities full-text NER also finds (name+label)",
               "budget_vs_full_text.precision_vs_full_text"),
    ]),
    "pipeline_throughput": Benchmark("Processing chain clean → dedupe → enrich, 2 workers (index off)", [
        Figure("clean + MinHash, one core", "stage_alone_articles_per_s.clean_and_sign", "articles/s"),
        Figure("dedupe decision, one core", "stage_alone_articles_per_s.dedupe_decide", "articles/s"),
        Figure("enrich, one core", "stage_alone_articles_per_s.enrich", "articles/s"),
        Figure("whole chain, first to last output", "chain_articles_per_s", "articles/s", (">=", 25)),
        Figure("stage-alone capacity of the cores", "stage_alone_capacity_articles_per_s", "articles/s"),
        Figure("chain's share of that capacity", "chain_share_of_capacity", "", (">=", 0.85)),
    ]),
    "dedupe_state": Benchmark("Dedupe state with 1,000,000 articles held (30 days)", [
        Figure("near-duplicate index memory", "index_bytes_per_article", "B/article", ("<=", 300)),
        Figure("process RSS growth (index + RocksDB + allocator)", "bytes_per_article", "B/article", ("<=", 300)),
        Figure("index rebuild from the store", "rebuild_s", "s", ("<=", 30)),
        Figure("decisions with 1 M held", "decisions_per_s", "decisions/s", (">=", 3000)),
        Figure("recall on edited copies", "recall"),
        Figure("same 20,000 articles: recall of datasketch MinHashLSH", "datasketch_recall"),
        Figure("same 20,000 articles: recall of the band index", "compare_recall"),
    ]),
    "dedupe_recovery": Benchmark("Dedupe recovery: worker restart with 1,000,000 articles, rocksdb:// (real broker)", [
        Figure("restart to the first decision", "restart_s", "s", ("<=", 30)),
        Figure("first start without local state", "first_start_s", "s"),
    ]),
    "sink_throughput": Benchmark("Sink: ~750-word documents into the local Elasticsearch node", [
        Figure("direct bulk (ElasticSink)", "direct.docs_per_s", "docs/s", (">=", 2000)),
        Figure("through Kafka + a Faust worker", "kafka.docs_per_s", "docs/s"),
    ]),
    "sink_throughput_60_words": Benchmark("Sink: 60-word (summary-sized) documents", [
        Figure("direct bulk (ElasticSink)", "direct.docs_per_s", "docs/s", (">=", 2000)),
        Figure("through Kafka + a Faust worker", "kafka.docs_per_s", "docs/s"),
    ]),
    "e2e_latency": Benchmark("End to end: connector fetch → found by search, 100 items, 2 workers", [
        Figure("p50", "p50_s", "s", ("<=", 1.5)),
        Figure("p90", "p90_s", "s"),
        Figure("p99", "p99_s", "s", ("<=", 3.0)),
        Figure("items never found", "missing", "", ("<=", 0)),
    ]),
    "soak": Benchmark("Soak: `newsflow run --workers 2`, 500 feeds gaining items every second", [
        Figure("minutes", "minutes", "min"),
        Figure("items generated", "generated"),
        Figure("items never found by search", "missing", "", ("<=", 0)),
        Figure("published = indexed + duplicates + updates + dead letters", "reconciled", "", ("==", True)),
        Figure("indexed per second", "throughput_indexed_per_s", "items/s"),
        Figure("lag fetch → searchable, p50", "lag_p50_s", "s"),
        Figure("lag fetch → searchable, p99", "lag_p99_s", "s"),
        Figure("worker-1 RSS slope, second half", "rss.worker-1.slope_second_half_mb_per_min", "MB/min"),
        Figure("worker-2 RSS slope, second half", "rss.worker-2.slope_second_half_mb_per_min", "MB/min"),
        Figure("worker-1 RSS without its RocksDB tables, slope, second half",
               "rss.worker-1 without tables.slope_second_half_mb_per_min", "MB/min"),
        Figure("worker-1 RocksDB tables (memtables + block cache), at the end", "rss.worker-1 tables.last_mb", "MB"),
        Figure("worker-1 pool process RSS slope, second half", "rss.worker-1/sub2.slope_second_half_mb_per_min",
               "MB/min"),
        Figure("connector RSS slope, second half", "rss.connector.slope_second_half_mb_per_min", "MB/min"),
        Figure("child restarts (worker-1)", "child_restarts.worker-1", "", ("<=", 0)),
    ]),
    "alert_latency": Benchmark("Alerts: latency, matching, pipeline cost (narrow rules)", [
        Figure("news.raw → webhook, 1,000 rules, p50", "latency.p50_s", "s"),
        Figure("news.raw → webhook, 1,000 rules, p99", "latency.p99_s", "s", ("<=", 5.0)),
        Figure("matching, 10,000 broad rules (~75 matches/article)", "match.articles_per_s", "articles/s",
               (">=", 200)),
        Figure("matching, 10,000 narrow rules", "match_narrow.articles_per_s", "articles/s", (">=", 200)),
        Figure("matched and highlighted, 10,000 broad rules", "match.with_highlights_articles_per_s", "articles/s"),
        Figure("matched and highlighted, 10,000 narrow rules", "match_narrow.with_highlights_articles_per_s",
               "articles/s"),
        Figure("pipeline without rules", "pipeline.no_rules_articles_per_s", "articles/s"),
        Figure("pipeline with 10,000 narrow rules", "pipeline.10000_rules_articles_per_s", "articles/s"),
        Figure("pipeline slowdown from the rules", "pipeline.slowdown_pct", "%", ("<=", 10)),
    ]),
    "alert_latency_broad": Benchmark(
            "Alerts: pipeline cost of 10,000 broad rules (~45 alerts per article, 400 articles, median of 3 pairs)", [
        Figure("pipeline without rules", "pipeline.no_rules_articles_per_s", "articles/s"),
        Figure("pipeline with 10,000 broad rules", "pipeline.10000_rules_articles_per_s", "articles/s"),
        Figure("pipeline slowdown from the rules", "pipeline.slowdown_pct", "%", ("<=", 10)),
        Figure("slowdown in each pair of runs", "pipeline.slowdown_pct_runs", "%"),
        Figure("alerts delivered when the last article was indexed", "pipeline.10000_rules_alerts", "alerts"),
        Figure("alerts delivered in all", "pipeline.10000_rules_alerts_total", "alerts"),
        Figure("last alert delivered, from the first article sent", "pipeline.10000_rules_last_alert_after_s", "s"),
    ]),
    "eval_extraction": Benchmark("Text extraction quality (gate): 135 pages, 11 languages", [
        Figure("F1, newsflow", "f1"),
        Figure("F1, trafilatura alone", "by_language.all.trafilatura.f1"),
        Figure("gate passed (floors, ≥ trafilatura alone per language)", "passed", "", ("==", True)),
    ]),
    "eval_entities": Benchmark("Entity quality (gate): 10 annotated articles", [
        Figure("precision", "scores.precision"),
        Figure("recall", "scores.recall"),
        Figure("F1", "scores.f1"),
        Figure("F1, name only", "scores.name_f1"),
        Figure("F1 of the raw spaCy small model", "raw_spacy_small_full_text.f1"),
        Figure("NER budget (the worker's default)", "ner_max_words", "words"),
        Figure("gate passed (floors, ≥ raw spaCy)", "ok", "", ("==", True)),
    ]),
}

_OPS = {">=": ("≥", lambda v, t: v >= t), "<=": ("≤", lambda v, t: v <= t), "==": ("", lambda v, t: v == t)}


# The README's "Figures" table: a few headline figures, rendered from the same records as RESULTS.md (so the two
# never disagree), between these two markers. (benchmark, figure label, what the README calls it)
HEADLINE: list[tuple[str, str, str]] = [
    ("pipeline_throughput", "whole chain, first to last output", "clean → dedupe → enrich, 2 workers, 2 cores"),
    ("stage_enrich", "fresh text (~975 words, no paragraph seen before), per core", "entity recognition, per core"),
    ("sink_throughput", "direct bulk (ElasticSink)", "indexing ~750-word articles"),
    ("connector_throughput", "cold round (every item new)", "connector: new feed items into news.raw"),
    ("e2e_latency", "p99", "feed fetch → found by search, p99"),
    ("alert_latency", "news.raw → webhook, 1,000 rules, p99", "news.raw → alert webhook, 1,000 rules, p99"),
    ("alert_latency", "matching, 10,000 narrow rules", "alert matching, 10,000 rules"),
    ("alert_latency", "pipeline slowdown from the rules", "pipeline slowdown, 10,000 narrow rules"),
    ("alert_latency_broad", "pipeline slowdown from the rules",
     "pipeline slowdown, 10,000 broad rules (~45 alerts per article)"),
    ("soak", "items never found by search", "items lost in the 60-minute soak"),
]
HEADLINE_START = "<!-- Figures: generated by bench/render_results.py from bench/results/*.json. -->"
HEADLINE_END = "<!-- End of the generated figures. -->"


def load_results(directory: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """Every ``<name>.json`` in ``directory``, by name; a name missing from :data:`BENCHMARKS` is an error."""
    results = {}
    for path in sorted(directory.glob("*.json")):
        if path.stem not in BENCHMARKS:
            raise SystemExit(f"{path}: unknown benchmark name {path.stem!r}; add it to BENCHMARKS in {__file__}")
        results[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return results


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, float):
        decimals = len(repr(value).split(".")[1]) if "." in repr(value) and "e" not in repr(value) else 0
        return f"{value:,.{decimals}f}"
    if isinstance(value, list):  # the runs behind a median
        return ", ".join(_number(v) for v in value)
    return str(value)


def _load(record: dict[str, Any]) -> str:
    load = record.get("load")
    if not load:
        return record.get("load_note") or "load not recorded"
    before, after = load["before"], load["after"]
    text = f"load {before[0]:.2f} → {after[0]:.2f} (1-min average, before → after) on {record['nproc']} cores"
    return f"{text}; {record['load_note']}" if record.get("load_note") else text


def _rows(bench: Benchmark, result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows = []
    for fig in bench.figures:
        value = _lookup(result, fig.path)
        measured = "not measured" if value is None else f"{_number(value)} {fig.unit}".strip()
        met: bool | None = None
        target = ""
        if fig.target is not None:
            op, goal = fig.target
            symbol, check = _OPS[op]
            target = "pass" if isinstance(goal, bool) else f"{symbol} {_number(goal)} {fig.unit}".strip()
            met = None if value is None else bool(check(value, goal))
        rows.append((fig.label, measured, target, met))
    return rows


def render(results: dict[str, dict[str, Any]]) -> str:
    """RESULTS.md for these records: a summary of missed targets, then one section per benchmark."""
    out = [
        "# Benchmark results",
        "",
        "<!-- Generated by bench/render_results.py from bench/results/*.json: do not edit by hand. -->",
        "",
        "One current figure per benchmark: the last recorded run of each, with its command, date (UTC) and",
        "machine load. Record a run with `python bench/record.py NAME -- COMMAND` (docs/development.md#benchmarks).",
        "",
    ]
    sections, missed = [], []
    for name, bench in BENCHMARKS.items():
        if name not in results:
            continue
        record = results[name]
        rows = _rows(bench, record.get("result", {}))
        missed += [f"- {bench.title}: {label}, {measured} (target {target})"
                   for label, measured, target, met in rows if met is False]
        sections += [f"## {name}: {bench.title}", "", f"`{record['command']}` · {record['date']} · {_load(record)}", ""]
        if record.get("exit_code"):
            sections += [f"The benchmark exited with code {record['exit_code']}.", ""]
        if record.get("note"):
            sections += [record["note"], ""]
        sections += ["| figure | measured | target | met? |", "| --- | --- | --- | --- |"]
        for label, measured, target, met in rows:
            verdict = "" if met is None else ("yes" if met else "**no**")
            sections.append(f"| {label} | {measured} | {target} | {verdict} |")
        sections.append("")
    out += ["Missed targets:", "", *(missed or ["- none"]), "", *sections]
    return "\n".join(out).rstrip("\n") + "\n"


def render_headline(results: dict[str, dict[str, Any]]) -> str:
    """The README's figures table (:data:`HEADLINE`), markers included."""
    lines = [HEADLINE_START, "", "| figure | measured | target | met? |", "| --- | --- | --- | --- |"]
    for name, label, title in HEADLINE:
        if name not in results:
            continue
        rows = {row[0]: row for row in _rows(BENCHMARKS[name], results[name].get("result", {}))}
        _label, measured, target, met = rows[label]
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {title} | {measured} | {target} | {verdict} |")
    return "\n".join([*lines, "", HEADLINE_END])


def readme_with_headline(readme: str, results: dict[str, dict[str, Any]]) -> str:
    """``readme`` with the text between the markers replaced by :func:`render_headline`."""
    start, end = readme.find(HEADLINE_START), readme.find(HEADLINE_END)
    if start == -1 or end < start:
        raise ValueError(f"the README has no {HEADLINE_START!r} ... {HEADLINE_END!r} block")
    return readme[:start] + render_headline(results) + readme[end + len(HEADLINE_END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the output file differs from the render")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="directory of <name>.json records")
    parser.add_argument("--output", type=Path, default=RESULTS_MD)
    parser.add_argument("--readme", type=Path, default=README_MD, help="the README whose figures table is rendered")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    outputs = {args.output: render(results)}
    if args.readme.exists():
        outputs[args.readme] = readme_with_headline(args.readme.read_text(encoding="utf-8"), results)
    if args.check:
        for path, text in outputs.items():
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                print(f"{path} is not the render of {args.results}: run python bench/render_results.py",
                      file=sys.stderr)
                return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
