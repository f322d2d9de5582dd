"""Throughput of the dedupe stage alone: MinHash signatures and Deduper.decide, in articles/s.

Articles are realistic 300-1,500 word bodies (bench/_articles.py); a share of them (``--near``) are lightly
edited copies of earlier ones at other URLs, and a share (``--replays``) are exact replays, so every decision
path runs. The signature (CPU, off-loop in the service: the clean stage computes it) and the decision (table
look-ups + one LSH query, on the loop) are timed separately.

    python bench/stage_dedupe.py [--articles 2000] [--near 0.2] [--replays 0.1]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._articles import clean_articles  # noqa: E402


def _edited(article, rng: random.Random, n: int):
    from pipeline.canonical import text_fingerprint
    from pipeline.schemas import CleanArticle

    paragraphs = article.body.split("\n")
    for i in rng.sample(range(len(paragraphs)), max(1, len(paragraphs) // 8)):
        paragraphs[i] = paragraphs[i].replace(" the ", " this ", 2) + " An editor added this sentence."
    body = "\n".join(paragraphs)
    url = f"https://copy.invalid/{n}"
    return CleanArticle(**{**article.model_dump(), "body": body, "url": url, "canonical_url": url,
                           "text_fingerprint": text_fingerprint(body)})


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--near", type=float, default=0.2)
    parser.add_argument("--replays", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from pipeline.dedupe import Deduper, MappingDedupeStore, minhash_signature
    from pipeline.settings import PipelineSettings

    p = PipelineSettings()  # the stage as configured by default

    rng = random.Random(args.seed)
    base = clean_articles(args.articles, seed=args.seed)
    stream = []
    for n in range(args.articles):
        roll = rng.random()
        if stream and roll < args.replays:
            stream.append(rng.choice(stream))
        elif stream and roll < args.replays + args.near:
            stream.append(_edited(rng.choice(stream), rng, n))
        else:
            stream.append(base[n])  # an independent sample of paragraphs: a new story
    words = sum(len(a.body.split()) for a in stream)

    started = time.perf_counter()
    signatures = [minhash_signature(a.body, num_perm=p.minhash_permutations, shingle_size=p.shingle_size)
                  for a in stream]
    sig_s = time.perf_counter() - started

    deduper = Deduper(MappingDedupeStore(), threshold=p.near_duplicate_threshold, num_perm=p.minhash_permutations)
    actions: Counter[str] = Counter()
    gc.collect()
    rss_before = _rss()
    started = time.perf_counter()
    for article, signature in zip(stream, signatures, strict=True):
        actions[deduper.decide(article, signature).action] += 1
    decide_s = time.perf_counter() - started
    gc.collect()
    # The tables as a worker with pipeline.store memory:// holds them (dicts of JSON-decoded records, as Faust's
    # in-memory tables and their standby copies do), plus the band index: what the soak's workers grow by.
    held = actions["new"] + actions["near_duplicate"] + actions["update"]
    bytes_per_article = round((_rss() - rss_before) / held)

    print(json.dumps({
        "bench": "stage_dedupe", "articles": len(stream), "avg_words": round(words / len(stream)),
        "signature_per_s": round(len(stream) / sig_s, 1), "decide_per_s": round(len(stream) / decide_s, 1),
        "stage_per_s": round(len(stream) / (sig_s + decide_s), 1), "actions": dict(actions),
        "memory_store_bytes_per_article": bytes_per_article,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
