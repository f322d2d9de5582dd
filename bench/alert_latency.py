"""Alerting benchmark: latency news.raw -> webhook, matching throughput, pipeline throughput with rules loaded.

Runs the real thing against the running local stack (own topic prefix, app id, index, data dir):

* ``latency``: one `newsflow worker` with ``--rules`` (default 1,000) rules loaded; ``--articles`` (100) items
  enter news.raw at ``--rate`` per second, each matched by one webhook rule through its own token; latency is
  webhook arrival minus the moment the item was acknowledged on news.raw. Target p99 <= 5 s (bar: 3 s).
* ``match``: :class:`pipeline.alerts.matcher.Matcher` with ``--match-rules`` (10,000) generated rules over
  ``--match-articles`` (1,000) indexed articles in batches of ``alerts.batch_size``. Target >= 200 articles/s
  matched; also reported: matched and highlighted (what the agent does before delivering).
* ``pipeline``: the worker's throughput (``--pipeline-articles`` items into news.raw until all are indexed) with
  no rules and with 10,000 rules. Target: within 10 %.

    python bench/alert_latency.py [--parts latency,match,pipeline]

Prints one JSON object on its last line (with the load average before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import httpx  # noqa: E402
import yaml  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from pipeline.alerts.matcher import Matcher  # noqa: E402
from pipeline.alerts.rules import Channels, Rule  # noqa: E402
from pipeline.canonical import canonical_url  # noqa: E402
from pipeline.index import make_async_client  # noqa: E402
from pipeline.schemas import RAW_TOPIC, EnrichedArticle, Entity, RawItem  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.sink import ElasticSink  # noqa: E402
from pipeline.topics import ensure_topics  # noqa: E402
from testkit.alerts_corpus import (  # noqa: E402
    PEOPLE,
    Receiver,
    generated_queries,
    wait_until,
    zipf_text,
    zipf_vocabulary,
    zipf_weights,
)
from testkit.topics import delete_topics  # noqa: E402

# News-like text: a 20,000-word vocabulary with Zipf frequencies; rules use words of middling frequency.
VOCABULARY = zipf_vocabulary()
WEIGHTS = zipf_weights(VOCABULARY)
RULE_WORDS = VOCABULARY[300:15_000]


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0:3].__str__()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 3)


def _arrivals(receiver: Receiver) -> tuple[dict[str, float], dict[str, float], int]:
    """token -> first webhook arrival; token -> seconds from indexed (news.indexed) to it; other alerts."""
    arrivals: dict[str, float] = {}
    after_index: dict[str, float] = {}
    others = 0
    for path, _headers, body, at in list(receiver.requests):
        if not path.startswith("/t/"):
            others += 1
        elif path[3:] not in arrivals:
            arrivals[path[3:]] = at
            after_index[path[3:]] = at - datetime.fromisoformat(json.loads(body)["alert"]["indexed_at"]).timestamp()
    return arrivals, after_index, others


def _settle(receiver: Receiver, quiet_s: float = 5.0, timeout_s: float = 900.0) -> tuple[int, float]:
    """Wait until no webhook arrived for ``quiet_s``; (requests received, time of the last one)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        requests = list(receiver.requests)
        last = max((at for *_rest, at in requests), default=0.0)
        if time.time() - max(last, 0.0) >= quiet_s:
            return len(requests), last
        time.sleep(0.5)
    requests = list(receiver.requests)
    return len(requests), max((at for *_rest, at in requests), default=0.0)


def _item(run_id: str, i: int, token: str | None = None) -> RawItem:
    rng = random.Random(f"{run_id}-{i}")
    sentences = [zipf_text(rng, VOCABULARY, WEIGHTS, rng.randint(12, 20)).capitalize() + "."
                 for _ in range(rng.randint(15, 30))]
    if token:
        sentences.append(f"Reference {token}.")
    url = f"https://bench.example.com/{run_id}/{i}"
    return RawItem(feed_url="https://bench.example.com/rss", link=url, canonical_link=canonical_url(url),
                   title=f"Bench story {i} " + zipf_text(rng, VOCABULARY, WEIGHTS, 6), summary=" ".join(sentences),
                   language="en")


def _articles(n: int) -> list[EnrichedArticle]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    # The rules' six people among 300 others, as in news: any one name is in few articles.
    people = [*PEOPLE, *(f"{a.capitalize()} {b.capitalize()}" for a, b in zip(VOCABULARY[500:800],
                                                                          VOCABULARY[900:1200], strict=True))]
    return [EnrichedArticle(
        id=f"m{i}", story_id=f"ms{i}", feed_url="http://bench.example/rss", url=f"https://bench.example/{i}",
        title=zipf_text(rng, VOCABULARY, WEIGHTS, 8), summary=zipf_text(rng, VOCABULARY, WEIGHTS, 30),
        body=zipf_text(rng, VOCABULARY, WEIGHTS, rng.randint(300, 700)), source="Bench", language="en",
        ingested_at=now, published_at=now, text_fingerprint=f"fp{i}",
        entities=[Entity(name=p, label="PERSON") for p in rng.sample(people, 1)],
        entity_names=rng.sample(people, 1)) for i in range(n)]


def _queries(n: int, seed: int) -> list[tuple[str, dict[str, object]]]:
    """Generated rules without pure negations ("NOT x" alerts on nearly everything: nobody sets that up)."""
    fixed = ("negotiate", "running")  # the agreement test's stemming probes: words in nearly every bench article
    out = [q for q in generated_queries(n * 2, seed=seed, words=RULE_WORDS)
           if not q[0].startswith("NOT ") and q[0] not in fixed]
    return out[:n]


def _rules(n: int, hook: str, tokens: list[str], *, narrow: bool = False) -> list[dict[str, Any]]:
    """One rule per token (webhook /t/<token>), the rest generated queries (webhook /other); ``narrow`` adds a
    required word to each generated query (a rule then matches about 1 article in 3,000, not 1 in 120)."""
    rules = [{"name": f"tok{i}", "query": token, "channels": {"webhook": f"{hook}/t/{token}"}}
             for i, token in enumerate(tokens)]
    for i, (query, filters) in enumerate(_queries(max(0, n - len(tokens)), seed=3)):
        if narrow:
            query = f"({query}) AND {random.Random(i).choice(RULE_WORDS)}"
        rules.append({"name": f"gen{i}", "query": query, "channels": {"webhook": f"{hook}/other"},
                      **{k: v for k, v in filters.items() if k in ("language", "entity")}})
    return rules


class Stage:
    """A worker with its own prefix/app/index, cleaned up afterwards."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.work = Path(tempfile.mkdtemp(prefix=f"newsflow-alerts-{self.run_id}-"))
        rules_file = self.work / "alerts.yaml"
        rules_file.write_text(yaml.safe_dump({"rules": rules}))
        self.env = {**os.environ, "NEWSFLOW_DATA_DIR": str(self.work / "data"),
                    "NEWSFLOW_KAFKA_TOPIC_PREFIX": f"t{self.run_id}.",
                    "NEWSFLOW_PIPELINE_APP_ID": f"t{self.run_id}",
                    "NEWSFLOW_ES_INDEX_PREFIX": f"ab-{self.run_id}", "NEWSFLOW_ES_ALIAS": f"ab-{self.run_id}",
                    "NEWSFLOW_ALERTS_RULES_FILE": str(rules_file), "NEWSFLOW_LOG_FORMAT": "json",
                    "NEWSFLOW_SINK_BATCH_TIMEOUT_S": "0.2", "NEWSFLOW_PIPELINE_NLP_BATCH_TIMEOUT_S": "0.2"}
        self.settings = load_settings(environ={k: v for k, v in self.env.items() if k.startswith("NEWSFLOW_")})
        ensure_topics(self.settings)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker", "--name", "bench", "--web-port", "0"],
            env=self.env, stdout=(self.work / "worker.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.producer = KafkaProducer(bootstrap_servers=self.settings.kafka.servers, acks="all", linger_ms=0)
        # One pooled client for the polls: httpx.get builds a client (and an SSL context) per call, 22 ms of CPU,
        # which at 10 polls/s took a fifth of a core from the pipeline being measured.
        self.http = httpx.Client(base_url=self.settings.es.url, timeout=10)
        self.topic = self.settings.kafka.topic(RAW_TOPIC)

    def produce(self, item: RawItem) -> float:
        self.producer.send(self.topic, key=item.key.encode(), value=item.model_dump_json().encode()).get(timeout=30)
        return time.time()

    def indexed(self) -> int:
        resp = self.http.get(f"/{self.settings.es.alias}/_count")
        return int(resp.json().get("count", 0)) if resp.status_code == 200 else 0

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.producer.close()
        http = self.http
        for index in http.get(f"/ab-{self.run_id}-*", params={"allow_no_indices": "true"}, timeout=30).json():
            http.delete(f"/{index}", timeout=30)  # by name: the node refuses wildcard deletes
        http.delete(f"/_index_template/ab-{self.run_id}-template", timeout=30)
        http.close()
        delete_topics(self.settings.kafka.bootstrap, self.run_id)  # t<run_id>.*: topics and changelogs


def _wait(cond: Any, timeout_s: float, stage: Stage, what: str) -> None:
    def alive() -> None:
        if stage.proc.poll() is not None:
            raise SystemExit(f"worker exited ({stage.proc.returncode}); see {stage.work / 'worker.log'}")

    wait_until(cond, timeout_s, f"{what} (see {stage.work / 'worker.log'})", alive)


def bench_latency(n_rules: int, n_articles: int, rate: float) -> dict[str, Any]:
    hooks = Receiver()
    run = uuid.uuid4().hex[:6]
    tokens = [f"alerttok{run}x{i}" for i in range(n_articles + 1)]
    stage = Stage(_rules(n_rules, hooks.url, tokens))
    try:
        # Warm-up: the worker joins, loads spaCy, recovers tables; the clock starts after the first alert.
        stage.produce(_item(stage.run_id, 10**6, tokens[-1]))
        _wait(lambda: tokens[-1] in _arrivals(hooks)[0], 300, stage, "the warm-up alert")
        sent: dict[str, float] = {}
        for i in range(n_articles):
            sent[tokens[i]] = stage.produce(_item(stage.run_id, i, tokens[i]))
            time.sleep(1 / rate)
        _wait(lambda: all(t in _arrivals(hooks)[0] for t in sent), 300, stage, "every alert")
        arrivals, after_index, others = _arrivals(hooks)
        latencies = [arrivals[t] - sent[t] for t in sent]
        return {"rules": n_rules, "articles": n_articles, "rate_per_s": rate, "p50_s": _pct(latencies, 50),
                "p99_s": _pct(latencies, 99), "max_s": round(max(latencies), 3), "other_alerts": others,
                "indexed_to_webhook_p50_s": _pct([after_index[t] for t in sent], 50),
                "indexed_to_webhook_p99_s": _pct([after_index[t] for t in sent], 99)}
    finally:
        stage.close()
        hooks.close()


async def _match(n_rules: int, n_articles: int, *, narrow: bool = False) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    settings = load_settings(environ={"NEWSFLOW_ES_INDEX_PREFIX": f"ab-{run_id}", "NEWSFLOW_ES_ALIAS": f"ab-{run_id}"})
    articles = _articles(n_articles)
    rules = [Rule(name=f"r{i}", query=f"({q}) AND {random.Random(i).choice(RULE_WORDS)}" if narrow else q,
                  channels=Channels(log=True)) for i, (q, _f) in enumerate(_queries(n_rules, seed=5))]
    es = make_async_client(settings.es)
    try:
        sink = ElasticSink(es, settings)
        await sink.start()
        for start in range(0, len(articles), 500):
            await sink.index_articles(articles[start:start + 500])
        await es.indices.refresh(index=settings.es.alias)
        t0 = time.perf_counter()
        matcher = Matcher(rules, msearch_chunk=settings.alerts.msearch_chunk)
        await matcher.match(es, settings.es.alias, articles[:1])  # rule analysis (cached), not per batch
        prepare_s = time.perf_counter() - t0
        batch = settings.alerts.batch_size
        matches = 0
        took = highlighting = 0.0
        for start in range(0, len(articles), batch):
            t0 = time.perf_counter()
            found = await matcher.match(es, settings.es.alias, articles[start:start + batch])
            took += time.perf_counter() - t0
            # Then highlighted, as the alerts agent does with a batch's new matches before delivering them.
            t0 = time.perf_counter()
            matches += len(matcher.highlight(found))
            highlighting += time.perf_counter() - t0
        return {"rules": n_rules, "narrow_rules": narrow, "articles": n_articles, "batch": batch,
                "articles_per_s": round(n_articles / took, 1),
                "with_highlights_articles_per_s": round(n_articles / (took + highlighting), 1),
                "matches": matches, "unnarrowed_rules": matcher.always, "rules_load_s": round(prepare_s, 2)}
    finally:
        for index in await es.indices.get(index=f"ab-{run_id}-*", allow_no_indices=True):
            await es.indices.delete(index=index)  # by name: the node refuses wildcard deletes
        await es.options(ignore_status=404).indices.delete_index_template(name=f"ab-{run_id}-template")
        await es.close()


def _pipeline_run(n_rules: int, n_articles: int, *, narrow: bool) -> dict[str, Any]:
    """One worker with ``n_rules`` rules: its rate over ``n_articles`` (to the last one indexed) and the alerts
    it sent."""
    hooks = Receiver()
    stage = Stage(_rules(n_rules, hooks.url, [], narrow=narrow))
    try:
        stage.produce(_item(stage.run_id, 10**6))
        _wait(lambda: stage.indexed() >= 1, 300, stage, "the warm-up article")
        items = [_item(stage.run_id, i) for i in range(n_articles)]
        t0 = time.time()
        for item in items:
            stage.producer.send(stage.topic, key=item.key.encode(), value=item.model_dump_json().encode())
        stage.producer.flush()
        _wait(lambda: stage.indexed() >= n_articles + 1, 900, stage, "every article indexed")
        out: dict[str, Any] = {"articles_per_s": round(n_articles / (time.time() - t0), 2),
                               "alerts": _arrivals(hooks)[2]}  # delivered by the time the last article is indexed
        # Then until the deliveries stop (5 s without one): do the alerts keep up with the articles?
        total, last = _settle(hooks)
        out["alerts_total"] = total
        out["last_alert_after_s"] = round(last - t0, 2) if total else None
        return out
    finally:
        stage.close()
        hooks.close()


def bench_pipeline(n_rules: int, n_articles: int, *, narrow: bool, repeat: int) -> dict[str, Any]:
    """``repeat`` pairs of runs (without rules, then with), each pair's slowdown; the medians are the figures
    (single runs on two shared cores vary by several points)."""
    out: dict[str, Any] = {"articles": n_articles, "narrow_rules": narrow, "pairs": repeat}
    label = f"{n_rules}_rules"
    runs: dict[str, list[dict[str, Any]]] = {"no_rules": [], label: []}
    slowdowns: list[float] = []
    for _ in range(repeat):
        base = _pipeline_run(0, n_articles, narrow=narrow)
        loaded = _pipeline_run(n_rules, n_articles, narrow=narrow)
        runs["no_rules"].append(base)
        runs[label].append(loaded)
        slowdowns.append(round(100 * (base["articles_per_s"] - loaded["articles_per_s"]) / base["articles_per_s"], 1))
        print(json.dumps({"pair": len(slowdowns), "no_rules": base, label: loaded, "slowdown_pct": slowdowns[-1]}),
              flush=True)
    for name, results in runs.items():
        out[f"{name}_articles_per_s"] = statistics.median(r["articles_per_s"] for r in results)
        out[f"{name}_articles_per_s_runs"] = [r["articles_per_s"] for r in results]
        middle = sorted(results, key=lambda r: r["articles_per_s"])[len(results) // 2]  # the median run's alerts
        out[f"{name}_alerts"] = middle["alerts"]
        out[f"{name}_alerts_total"] = middle["alerts_total"]
        out[f"{name}_last_alert_after_s"] = middle["last_alert_after_s"]
    out["slowdown_pct"] = statistics.median(slowdowns)
    out["slowdown_pct_runs"] = slowdowns
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="latency,match,pipeline")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="items per second into news.raw")
    parser.add_argument("--match-rules", type=int, default=10_000)
    parser.add_argument("--match-articles", type=int, default=1000)
    parser.add_argument("--pipeline-articles", type=int, default=200)
    parser.add_argument("--broad", action="store_true", help="pipeline part: the broad rules (~75 matches per article)")
    parser.add_argument("--pairs", type=int, default=3, help="pipeline part: runs without and with rules (median)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"bench": "alert_latency", "loadavg_before": _loadavg()}
    if "match" in parts:
        # Broad rules (~75 matches per article: a stress case) and narrow ones (~0.5 per article: realistic).
        for key, narrow in (("match", False), ("match_narrow", True)):
            result[key] = asyncio.run(_match(args.match_rules, args.match_articles, narrow=narrow))
            result[key]["target_articles_per_s"] = 200
            print(json.dumps(result[key]), flush=True)
    if "latency" in parts:
        result["latency"] = bench_latency(args.rules, args.articles, args.rate)
        result["latency"]["target_p99_s"] = 5.0
        print(json.dumps(result["latency"]), flush=True)
    if "pipeline" in parts:
        result["pipeline"] = bench_pipeline(args.match_rules, args.pipeline_articles, narrow=not args.broad,
                                            repeat=args.pairs)
        result["pipeline"]["target_slowdown_pct"] = 10
        print(json.dumps(result["pipeline"]), flush=True)
    result["loadavg_after"] = _loadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
