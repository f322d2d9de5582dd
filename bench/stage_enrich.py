"""Throughput of the enrich stage alone: enrich_articles (spaCy NER + entities + keywords + lead) in articles/s.

Articles are realistic 300-1,500 word bodies (bench/_articles.py). One process is what one pool worker does;
``--workers N`` runs N processes over the same articles, like the agents' process pool. ``--ner-max-words``
measures the NER budget mode (NER on the first N words, counts over the whole body).

    python bench/stage_enrich.py [--articles 96] [--batch-size 16] [--workers 1] [--ner-max-words 0]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._articles import clean_articles  # noqa: E402


def _deduped(n: int) -> list:
    from pipeline.schemas import DedupedArticle

    return [DedupedArticle(**a.model_dump(), id=str(i), story_id=str(i)) for i, a in enumerate(clean_articles(n))]


def _run(articles: list, batch_size: int, ner_max_words: int) -> int:
    from pipeline.enrich import enrich_articles

    done = 0
    for i in range(0, len(articles), batch_size):
        done += len(enrich_articles(articles[i : i + batch_size], batch_size=batch_size, ner_max_words=ner_max_words))
    return done


def _warm(_: int) -> None:
    from pipeline.enrich import load_model

    load_model()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ner-max-words", type=int, default=0)
    args = parser.parse_args(argv)

    articles = _deduped(args.articles)
    words = sum(a.word_count for a in articles)
    if args.workers <= 1:
        _warm(0)  # model load is start-up cost, not throughput
        started = time.perf_counter()
        done = _run(articles, args.batch_size, args.ner_max_words)
    else:
        chunks = [articles[i :: args.workers] for i in range(args.workers)]
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(_warm, range(args.workers)))
            started = time.perf_counter()
            done = sum(pool.map(_run, chunks, [args.batch_size] * args.workers,
                                [args.ner_max_words] * args.workers))
    took = time.perf_counter() - started
    agreement = None
    if args.ner_max_words:
        # How much of full-text NER the budget mode keeps, on these long articles (name+label pairs).
        from pipeline.enrich import enrich_articles

        sample = articles[:32]
        full = enrich_articles(sample, batch_size=args.batch_size)
        budget = enrich_articles(sample, batch_size=args.batch_size, ner_max_words=args.ner_max_words)
        ref = [{(e.name, e.label) for e in a.entities} for a in full]
        got = [{(e.name, e.label) for e in a.entities} for a in budget]
        kept = sum(len(r & g) for r, g in zip(ref, got, strict=True))
        agreement = {"recall_vs_full": round(kept / max(1, sum(map(len, ref))), 3),
                     "precision_vs_full": round(kept / max(1, sum(map(len, got))), 3)}
    print(json.dumps({
        "bench": "stage_enrich", "articles": done, "avg_words": round(words / len(articles)),
        "workers": args.workers, "batch_size": args.batch_size, "ner_max_words": args.ner_max_words,
        "seconds": round(took, 2), "articles_per_s": round(done / took, 2), "words_per_s": round(words / took),
        "agreement_with_full_text": agreement, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
