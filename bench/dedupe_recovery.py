"""Dedupe recovery on the real broker: how long a `newsflow worker` takes to serve a dedupe decision again.

Writes N articles' dedupe state (signature, URL and fingerprint records, as the dedupe agent writes them)
straight into the three table changelog topics of a fresh app id, then:

1. starts a worker (``rocksdb://`` store, index agent off): Faust restores the tables from the changelogs, the
   dedupe agent rebuilds its index; a near-duplicate of one of the N articles is put on ``news.clean`` and the
   time from start to its decision on ``news.deduped`` is ``first_start_s`` (full changelog restore);
2. stops the worker (SIGTERM) and starts it again: its RocksDB tables are on local disk, so only the changelog
   tail is read before the rebuild; ``restart_s`` is the same time for a second copy.

Each decision must be ``near_duplicate`` of the right story (the index was rebuilt, not empty). The worker's
own log gives ``rebuild_s`` (the index rebuild alone). Topics are prefixed with a unique name and deleted after.

    NEWSFLOW_DATA_DIR=... python bench/dedupe_recovery.py [--n 100000]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUM_PERM = 128


def _records(n: int, day: int, seed: int):
    from pipeline.canonical import stable_id
    from pipeline.dedupe import SignatureRecord, UrlRecord

    rng = np.random.default_rng(seed)
    for i in range(n):
        url = f"https://recovery.example/{i}"
        aid = stable_id(url)
        fp = f"{i:032x}"
        sig = rng.integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64).tolist()
        yield (aid, url, fp, sig,
               SignatureRecord(story_id=aid, signature=sig, fingerprint=fp, day=day, canonical_url=url),
               UrlRecord(id=aid, fingerprint=fp, story_id=aid))


def _signature_of(i: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    sig = None
    for _ in range(i + 1):
        sig = rng.integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64)
    assert sig is not None
    return sig.tolist()


def _copy(signature: list[int], rng: np.random.Generator) -> list[int]:
    base = np.asarray(signature, dtype=np.uint64)
    return np.where(rng.random(NUM_PERM) < 0.9, base,
                    rng.integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64)).tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    from pipeline.canonical import stable_id, text_fingerprint
    from pipeline.schemas import CLEAN_TOPIC, DEDUPED_TOPIC, SIGNATURE_HEADER, CleanArticle, encode_signature, utcnow
    from pipeline.settings import load_settings
    from pipeline.topics import ensure_topic, ensure_topics

    settings = load_settings()
    bootstrap = settings.kafka.bootstrap
    unique = f"dr{uuid.uuid4().hex[:8]}"
    app_id, prefix = f"t{unique}", f"t{unique}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix, "partitions": 1})
    ensure_topics(settings.model_copy(update={"kafka": kafka}))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)  # to delete this run's topics at the end
    changelogs = {name: f"{app_id}-dedupe-{name}-changelog" for name in ("urls", "fingerprints", "signatures")}
    for changelog in changelogs.values():  # as Faust makes a table's changelog: one partition, compacted
        ensure_topic(settings, changelog, partitions=1, configs={"cleanup.policy": "compact"})

    day = int(time.time() // 86400)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50, batch_size=512 * 1024,
                             compression_type=None)
    started = time.perf_counter()

    def key(value: str) -> bytes:
        return json.dumps(value).encode()

    for aid, url, fp, _sig, sig_record, url_record in _records(args.n, day, args.seed):
        producer.send(changelogs["signatures"], key=key(aid), value=sig_record.model_dump_json().encode())
        producer.send(changelogs["urls"], key=key(url), value=url_record.model_dump_json().encode())
        producer.send(changelogs["fingerprints"], key=key(fp), value=json.dumps(aid).encode())
    producer.flush()
    produce_s = time.perf_counter() - started

    tmp = tempfile.TemporaryDirectory(prefix="dedupe-recovery-")
    log_path = Path(tmp.name) / "worker.log"
    env = {**os.environ, "NEWSFLOW_KAFKA_BOOTSTRAP": bootstrap, "NEWSFLOW_KAFKA_TOPIC_PREFIX": prefix,
           "NEWSFLOW_KAFKA_PARTITIONS": "1", "NEWSFLOW_PIPELINE_APP_ID": app_id,
           "NEWSFLOW_DATA_DIR": str(Path(tmp.name) / "data"), "NEWSFLOW_LOG_FORMAT": "json",
           "NEWSFLOW_PIPELINE_STORE": "rocksdb://", "NEWSFLOW_PIPELINE_INDEX_ENABLED": "false",
           "NEWSFLOW_PIPELINE_SESSION_TIMEOUT_S": "8"}
    deduped = KafkaConsumer(prefix + DEDUPED_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                            enable_auto_commit=False, group_id=None)
    rng = np.random.default_rng(args.seed + 1)
    results: dict[str, float] = {}
    proc: subprocess.Popen[bytes] | None = None
    try:
        for phase, target in (("first_start_s", 7), ("restart_s", args.n // 2)):
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pipeline.cli", "worker", "--name", "r", "--web-port", "0"],
                    env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            t0 = time.perf_counter()
            body = f"copy of {target} " * 30
            url = f"https://copies.example/{phase}"
            article = CleanArticle(url=url, canonical_url=url, feed_url="https://copies.example/rss", title=phase,
                                   body=body, ingested_at=utcnow(), text_fingerprint=text_fingerprint(body))
            header = encode_signature(_copy(_signature_of(target, args.seed), rng), NUM_PERM,
                                      settings.pipeline.shingle_size)
            producer.send(prefix + CLEAN_TOPIC, key=article.key.encode(), value=article.model_dump_json().encode(),
                          headers=[(SIGNATURE_HEADER, header)])
            producer.flush()
            found = None
            while found is None:
                if time.perf_counter() - t0 > args.timeout:
                    raise TimeoutError(f"{phase}: no decision within {args.timeout:.0f}s")
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
                for records in deduped.poll(timeout_ms=200).values():
                    for r in records:
                        m = json.loads(r.value)
                        if m["canonical_url"] == url:
                            found = m
            results[phase] = round(time.perf_counter() - t0, 2)
            expected = stable_id(f"https://recovery.example/{target}")
            if found["story_id"] != expected:
                raise AssertionError(f"{phase}: the copy did not join its story: {found['story_id']} != {expected}")
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            proc = None
        rebuilds = []
        for line in log_path.read_text(errors="replace").splitlines():
            if "dedupe index rebuilt" in line:
                try:  # the JSON object may follow a logging prefix
                    rebuilds.append(json.loads(line[line.index("{"):]).get("seconds"))
                except ValueError:
                    rebuilds.append(line[-200:])
        print(json.dumps({
            "bench": "dedupe_recovery", "n": args.n, "produce_s": round(produce_s, 1), **results,
            "rebuild_s": rebuilds, "store": "rocksdb://", "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }))
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        producer.close()
        deduped.close()
        mine = [t for t in admin.list_topics() if t.startswith(app_id)]
        if mine:
            admin.delete_topics(mine)
        admin.close()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
