"""Realistic 300-1,500 word article bodies for the dedupe and enrich stage benchmarks (shared helper).

Bodies are sampled, without repeats inside one article, from the hand-written paragraphs of the extraction
corpus and the entity corpus, so the NLP sees varied real-looking news text with many names in it.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def paragraph_pool() -> list[str]:
    pool: list[str] = []
    for path in sorted((ROOT / "bench" / "corpus" / "extraction").glob("*.expected.txt")):
        pool += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if len(p.split()) >= 12]
    for path in sorted((ROOT / "bench" / "corpus" / "entities").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))["body"]
        pool += [p.strip() for p in body.split("\n\n") if len(p.split()) >= 12]
    return pool


def bodies(n: int, *, seed: int = 7, min_words: int = 300, max_words: int = 1500) -> list[str]:
    rng = random.Random(seed)
    pool = paragraph_pool()
    out = []
    for _ in range(n):
        target = rng.randint(min_words, max_words)
        chosen: list[str] = []
        words = 0
        while words < target:
            for paragraph in rng.sample(pool, len(pool)):
                if words >= target:
                    break
                chosen.append(paragraph)
                words += len(paragraph.split())
        out.append("\n".join(chosen))
    return out


def clean_articles(n: int, *, seed: int = 7) -> list:
    from pipeline.canonical import text_fingerprint
    from pipeline.schemas import CleanArticle

    now = datetime.now(UTC)
    return [
        CleanArticle(feed_url="https://bench.invalid/feed", url=f"https://bench.invalid/a/{i}",
                     canonical_url=f"https://bench.invalid/a/{i}", title=body.split(".")[0][:90], body=body,
                     ingested_at=now, word_count=len(body.split()), text_fingerprint=text_fingerprint(body))
        for i, body in enumerate(bodies(n, seed=seed))
    ]
