"""Dedupe state at scale: memory per article, rebuild time, decisions/s and recall with N articles held.

Inserts N synthetic articles (random 128-value MinHash signatures, spread over ``--days`` days of a simulated
clock) through the real :class:`pipeline.dedupe.Deduper` and a RocksDB store (rocksdict, the library behind
Faust's ``rocksdb://`` tables, JSON keys and values as the Faust tables hold them), opened with the worker's
options (:func:`pipeline.table_store.rocksdb_options` over the loaded settings: one shared block cache holding
the SST index and filter blocks, small memtables). A share of them
(``--copies``) are edited copies of an earlier article (each signature value kept with probability J, J uniform
in [0.6, 0.95]: the estimated Jaccard a lightly edited syndicated copy scores) and a share (``--distractors``)
are same-topic articles (J in [0.1, 0.35]) that must stay apart.

Reported: ``bytes_per_article`` (resident memory growth of the process over the insert / N, store caches
included), ``index_bytes_per_article`` (the index arrays alone), ``rebuild_s`` (a new Deduper rebuilt from the
store, as after a restart), ``decisions_per_s`` (``--probe`` decisions with N held, after the rebuild),
``recall`` and ``false_merges`` over all copies and distractors, the CPU seconds of the rebuild and the
decisions/s per CPU second (the machine may be shared: wall-clock figures then understate one core),
``expire_s`` (one day expired), and the same
recall measured with datasketch's MinHashLSH (the previous index) on the first ``--compare`` articles.

    python bench/dedupe_state.py [--n 1000000] [--copies 0.1] [--distractors 0.05] [--days 30]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUM_PERM = 128
T0 = 1_780_000_000.0  # a fixed start of the simulated clock (2026-05-28)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class JsonRocks(MutableMapping[str, Any]):
    """A RocksDB database holding JSON keys and values, as a Faust ``rocksdb://`` table stores them."""

    def __init__(self, path: Path, options: Any) -> None:
        import rocksdict

        self.db = rocksdict.Rdict(str(path), options=options)

    @staticmethod
    def _key(key: str) -> bytes:
        return json.dumps(key).encode()

    def __getitem__(self, key: str) -> Any:
        raw = self.db.get(self._key(key))
        if raw is None:
            raise KeyError(key)
        return json.loads(raw.decode())

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.db.get(self._key(key))
        return default if raw is None else json.loads(raw.decode())

    def __setitem__(self, key: str, value: Any) -> None:
        self.db[self._key(key)] = json.dumps(value).encode()

    def __delitem__(self, key: str) -> None:
        del self.db[self._key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.db.get(self._key(key)) is not None

    def __iter__(self) -> Iterator[str]:
        for key in self.db.keys():  # noqa: SIM118  (Rdict's stubs declare keys(), not __iter__)
            yield json.loads(cast(bytes, key))

    def __len__(self) -> int:
        return sum(1 for _ in self.db.keys())  # noqa: SIM118

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for key, value in self.db.items():
            yield json.loads(cast(bytes, key).decode()), json.loads(cast(bytes, value).decode())

    def close(self) -> None:
        self.db.close()

    def memory(self) -> dict[str, int]:
        """RocksDB's own memory figures for this database (the block cache is the shared one)."""
        names = {"memtables": "rocksdb.cur-size-all-mem-tables", "table_readers": "rocksdb.estimate-table-readers-mem",
                 "block_cache": "rocksdb.block-cache-usage", "sst_files": "rocksdb.total-sst-files-size"}
        return {key: self.db.property_int_value(prop) or 0 for key, prop in names.items()}


@dataclass
class Item:
    n: int
    kind: str  # base | copy | distractor
    of: int | None  # the base it derives from
    signature: list[int]


def _base_signature(seed: int, n: int) -> np.ndarray:
    # Regenerated from (seed, n) when a copy needs it: the benchmark holds no signatures of its own.
    return np.random.default_rng((seed, n)).integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64)


def _derived(seed: int, n: int, base: np.ndarray, low: float, high: float) -> list[int]:
    rng = np.random.default_rng((seed, n, 1))
    keep = rng.random(NUM_PERM) < rng.uniform(low, high)
    return np.where(keep, base, rng.integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64)).tolist()


def _roll(seed: int, n: int) -> float:
    return random.Random(f"{seed}:{n}").random()


def stream(n_items: int, *, copies: float, distractors: float, seed: int, start: int = 0) -> Iterator[Item]:
    """Items start..start+n_items: each a new base, or a copy/distractor of an earlier base (same seed: same
    items; a probe continues the stream with ``start``)."""
    for n in range(start, start + n_items):
        roll = _roll(seed, n)
        if n > 0 and roll < copies + distractors:
            pick = random.Random(f"{seed}:{n}:of")
            of = pick.randrange(n)
            while of > 0 and _roll(seed, of) < copies + distractors:  # originals are bases
                of = pick.randrange(of + 1)
            base = _base_signature(seed, of)
            if roll < copies:
                yield Item(n, "copy", of, _derived(seed, n, base, 0.6, 0.95))
            else:
                yield Item(n, "distractor", of, _derived(seed, n, base, 0.1, 0.35))
        else:
            yield Item(n, "base", None, _base_signature(seed, n).tolist())


def article(item: Item) -> Any:
    from pipeline.schemas import CleanArticle

    url = f"https://bench.example/{item.n}"
    return CleanArticle(url=url, canonical_url=url, feed_url="https://bench.example/rss", title=f"Item {item.n}",
                        body=f"Body of item {item.n}. " * 20, ingested_at=datetime.now(UTC),
                        text_fingerprint=f"{item.n:032x}")


class Score:
    def __init__(self) -> None:
        self.copies = self.joined = self.false_merges = 0

    def add(self, item: Item, story_of: dict[int, str], action: str, story_id: str | None, own_id: str) -> None:
        """A copy must join the story of its original; anything else must not join any story but its own."""
        if item.kind == "copy":
            self.copies += 1
            target = story_of.get(item.of) if item.of is not None else None
            if action == "near_duplicate" and story_id == target:
                self.joined += 1
            elif action == "near_duplicate":
                self.false_merges += 1
        elif action == "near_duplicate":
            self.false_merges += 1

    @property
    def recall(self) -> float:
        return round(self.joined / self.copies, 4) if self.copies else 1.0


def _id_of(n: int) -> str:
    from pipeline.canonical import stable_id

    return stable_id(f"https://bench.example/{n}")


def compare_datasketch(items: list[Item], threshold: float) -> tuple[Score, Score]:
    """Recall on the same items: datasketch MinHashLSH + the same Jaccard check (the previous index) vs Deduper."""
    from datasketch import LeanMinHash, MinHashLSH

    from pipeline.dedupe import Deduper, MappingDedupeStore

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)

    stories: dict[str, str] = {}
    sigs: dict[str, LeanMinHash] = {}
    old, new = Score(), Score()
    deduper = Deduper(MappingDedupeStore(), threshold=threshold, num_perm=NUM_PERM)
    for item in items:
        key = _id_of(item.n)
        mh = LeanMinHash(seed=1, hashvalues=item.signature, scheme="affine32")
        best: tuple[float, str] | None = None
        for cand in sorted(lsh.query(mh)):
            sim = mh.jaccard(sigs[cand])
            if sim >= threshold and (best is None or sim > best[0]):
                best = (sim, cand)
        story = stories[best[1]] if best else key
        stories[key] = story
        sigs[key] = mh
        lsh.insert(key, mh, check_duplication=False)
        old_known = {item.of: stories[_id_of(item.of)]} if item.of is not None else {}
        old.add(item, old_known, "near_duplicate" if best else "new", story, key)
        new_known = {}
        if item.of is not None:
            record = deduper.store.get_signature(_id_of(item.of))
            new_known = {item.of: record.story_id} if record else {}
        decision = deduper.decide(article(item), item.signature)
        assert decision.article is not None
        new.add(item, new_known, decision.action, decision.article.story_id, decision.article.id)
    return old, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="articles held")
    parser.add_argument("--copies", type=float, default=0.1, help="share of edited copies")
    parser.add_argument("--distractors", type=float, default=0.05, help="share of same-topic distinct articles")
    parser.add_argument("--days", type=int, default=30, help="the N articles arrive over this many days")
    parser.add_argument("--probe", type=int, default=5000, help="decisions timed with N held")
    parser.add_argument("--compare", type=int, default=20_000, help="articles for the datasketch comparison")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where the RocksDB store goes (default: a tmp dir)")
    args = parser.parse_args(argv)

    from pipeline.dedupe import Deduper, MappingDedupeStore
    from pipeline.malloc import fix_mmap_threshold
    from pipeline.settings import load_settings
    from pipeline.table_store import rocksdb_options

    mmap_fixed = fix_mmap_threshold()  # as `newsflow worker` does
    tmp = tempfile.TemporaryDirectory(prefix="dedupe-state-", dir=args.dir)
    base = Path(tmp.name)
    import rocksdict

    settings = load_settings().pipeline  # the worker's settings: its RocksDB options and cache size
    cache = rocksdict.Cache(settings.table_block_cache_mb << 20)  # one per worker, as NewsflowApp.table_cache
    tables = [JsonRocks(base / name, rocksdb_options(settings, cache))
              for name in ("urls", "fingerprints", "signatures")]
    store = MappingDedupeStore(*tables)
    now = [T0]
    retention = args.days + 1  # everything inserted is still held at the end
    deduper = Deduper(store, threshold=args.threshold, num_perm=NUM_PERM, retention_days=retention,
                      clock=lambda: now[0])
    score = Score()
    per_item = args.days * 86400 / args.n
    rss0 = _rss()
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    for item in stream(args.n, copies=args.copies, distractors=args.distractors, seed=args.seed):
        now[0] = T0 + item.n * per_item
        decision = deduper.decide(article(item), item.signature)
        assert decision.article is not None
        known = {}
        if item.of is not None:  # the original's story, as decided (it may itself have joined one)
            record = store.get_signature(_id_of(item.of))
            known = {item.of: record.story_id} if record else {}
        score.add(item, known, decision.action, decision.article.story_id, decision.article.id)
    insert_s = time.perf_counter() - started
    held = len(deduper.index)
    index_bytes = deduper.index.nbytes()
    rss1 = _rss()
    store_mem = [t.memory() for t in tables]
    del deduper

    # A restart: a new Deduper over the same store.
    rebuilt = Deduper(store, threshold=args.threshold, num_perm=NUM_PERM, retention_days=retention,
                      clock=lambda: now[0])
    started, cpu = time.perf_counter(), time.process_time()
    rebuilt.rebuild()
    rebuild_s, rebuild_cpu_s = time.perf_counter() - started, time.process_time() - cpu

    probe = Score()
    items = list(stream(args.probe, copies=args.copies, distractors=args.distractors, seed=args.seed, start=args.n))
    arts = [article(i) for i in items]
    started, cpu = time.perf_counter(), time.process_time()
    actions = []
    for item, art in zip(items, arts, strict=True):
        decision = rebuilt.decide(art, item.signature)
        actions.append((item, decision))
    decide_s, decide_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    for item, decision in actions:
        assert decision.article is not None
        known = {}
        if item.of is not None:
            record = store.get_signature(_id_of(item.of))
            known = {item.of: record.story_id} if record else {}
        probe.add(item, known, decision.action, decision.article.story_id, decision.article.id)

    # One day later than the window allows for the first day: that day expires (index at once, tables in slices).
    now[0] = T0 + (retention + 1) * 86400
    started = time.perf_counter()
    rebuilt._tick()
    expired = rebuilt.expiring
    rebuilt.expire()
    expire_s = time.perf_counter() - started

    for t in tables:
        t.close()
    tmp.cleanup()
    del rebuilt, store
    old_score, same_score = compare_datasketch(
        list(stream(min(args.compare, args.n), copies=args.copies, distractors=args.distractors, seed=args.seed)),
        args.threshold)
    print(json.dumps({
        "bench": "dedupe_state", "n": args.n, "held": held, "days": args.days,
        "table_block_cache_mb": settings.table_block_cache_mb,
        "table_memtables_mb": settings.table_write_buffers * settings.table_write_buffer_mb,
        "mmap_threshold_fixed": mmap_fixed,
        "bytes_per_article": round((rss1 - rss0) / args.n, 1),
        "index_bytes_per_article": round(index_bytes / args.n, 1),
        # RocksDB's memory after the insert, MB (memtables and table readers summed over the three tables)
        "store_memtables_mb": round(sum(m["memtables"] for m in store_mem) / 2**20, 1),
        "store_table_readers_mb": round(sum(m["table_readers"] for m in store_mem) / 2**20, 1),
        "store_block_cache_mb": round(store_mem[0]["block_cache"] / 2**20, 1),
        "store_sst_mb": round(sum(m["sst_files"] for m in store_mem) / 2**20, 1),
        "insert_per_s": round(args.n / insert_s, 1),
        "rebuild_s": round(rebuild_s, 2), "rebuild_cpu_s": round(rebuild_cpu_s, 2),
        "decisions_per_s": round(args.probe / decide_s, 1),
        "decisions_per_cpu_s": round(args.probe / decide_cpu_s, 1),
        "recall": score.recall, "copies": score.copies, "false_merges": score.false_merges,
        "probe_recall": probe.recall, "probe_false_merges": probe.false_merges,
        "expired_articles": expired, "expire_s": round(expire_s, 3),
        "compare_n": min(args.compare, args.n), "datasketch_recall": old_score.recall,
        "datasketch_false_merges": old_score.false_merges, "compare_recall": same_score.recall,
        "compare_false_merges": same_score.false_merges,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "load_avg_1m_at_start": round(load_start, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
