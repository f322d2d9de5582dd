"""Cost of the enrich stage alone: enrich_articles (NER + entities + keywords + lead) per core, and its cache.

Three runs in this one process (what one pool process does), each starting with an empty mention cache:

1. ``fresh``: ``--articles`` articles of 300-1,500 words (~900 on average) whose paragraphs never repeat
   (bench/_articles.py ``unique_bodies``): the cost of text the model has never seen.
2. ``copies``: the same number of articles, ``--copies`` of them (default 20 %) edited copies of an earlier one
   (one sentence replaced, sometimes the last paragraph cut), as syndication and corrections bring them.
3. ``demo``: the demo feeds (config/demo), parsed and cleaned, then enriched feed by feed: the cache hit rate.

With a NER budget (``--ner-max-words`` > 0, the default), the fresh articles are enriched once more with full-text
NER (not timed) and the JSON reports the budget's agreement with it: the share of full-text entities (name+label,
and name only) the budget also finds, the share of its entities full text also finds, and the share of
full-text entities whose count is the same. The entity gate's articles are shorter than the budget; this is
where its cut is measured.

Rates are per core: articles over the process's CPU seconds (``time.process_time``), so a busy shared machine
slows the wall clock but not the figure much; wall-clock rates are printed too. ``--ner-max-words`` and
``--cache-size`` default to the settings (``pipeline.ner_max_words``, ``pipeline.ner_cache_paragraphs``).

    python bench/stage_enrich.py [--articles 96] [--batch-size N] [--ner-max-words N] [--cache-size N]

The last line printed is one JSON object. Target (issue 13): >= 15 articles/s per core on the fresh run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._articles import clean_articles  # noqa: E402

TARGET_PER_CORE = 15.0


def _deduped(articles: list) -> list:
    from pipeline.schemas import DedupedArticle

    return [DedupedArticle(**a.model_dump(), id=str(i), story_id=str(i)) for i, a in enumerate(articles)]


def measure(articles: list, *, batch_size: int, ner_max_words: int, cache_size: int) -> dict[str, object]:
    """Enrich ``articles`` in batches from an empty cache: rates per CPU second and the cache's hit rate."""
    from pipeline.enrich import enrich_articles, mention_cache

    cache = mention_cache(cache_size)
    cache.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(articles), batch_size):
        enrich_articles(articles[i : i + batch_size], batch_size=batch_size, ner_max_words=ner_max_words,
                        cache_size=cache_size)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    words = sum(a.word_count for a in articles)
    return {
        "articles": len(articles), "avg_words": round(words / len(articles)),
        "cpu_s": round(cpu, 2), "articles_per_s_per_core": round(len(articles) / cpu, 2),
        "words_per_s_per_core": round(words / cpu), "articles_per_s_wall": round(len(articles) / wall, 2),
        # Paragraph lookups (title, subtitle and body paragraphs; budget mode: also the extra sentences).
        "cache_hit_rate": round(cache.stats.hit_rate, 3),
    }


def agreement(articles: list, *, batch_size: int, ner_max_words: int) -> dict[str, float]:
    """How close the budget's entities come to full-text NER's on ``articles`` (micro averages, cache off)."""
    from pipeline.enrich import enrich_articles

    def entities(budget: int) -> list[dict[tuple[str, str], int]]:
        out = []
        for i in range(0, len(articles), batch_size):
            out += [{(e.name, e.label): e.count for e in a.entities}
                    for a in enrich_articles(articles[i : i + batch_size], batch_size=batch_size,
                                             ner_max_words=budget, cache_size=0)]
        return out

    full, budget = entities(0), entities(ner_max_words)
    both = sum(len(f.keys() & b.keys()) for f, b in zip(full, budget, strict=True))
    names_full = [{n for n, _ in f} for f in full]
    names_budget = [{n for n, _ in b} for b in budget]
    names_both = sum(len(f & b) for f, b in zip(names_full, names_budget, strict=True))
    same_count = sum(1 for f, b in zip(full, budget, strict=True) for k, n in f.items() if b.get(k) == n)
    n_full, n_budget = sum(map(len, full)), sum(map(len, budget))
    return {
        "recall_vs_full_text": round(both / n_full, 4), "precision_vs_full_text": round(both / n_budget, 4),
        "name_recall_vs_full_text": round(names_both / sum(map(len, names_full)), 4),
        "name_precision_vs_full_text": round(names_both / sum(map(len, names_budget)), 4),
        "same_count_share": round(same_count / n_full, 4), "full_text_entities": n_full,
    }


def demo_articles() -> list:
    """The demo feeds' items, parsed and cleaned as the pipeline does, in feed order."""
    import yaml

    from connectors.parser import parse_feed
    from pipeline.clean import clean_article
    from pipeline.errors import NewsflowError
    from pipeline.settings import PipelineSettings

    feeds = yaml.safe_load((ROOT / "config" / "feeds.yaml").read_text(encoding="utf-8"))["feeds"]
    out = []
    for feed in feeds:
        path = ROOT / feed["url"].removeprefix("file:")
        for item in parse_feed(path.read_bytes(), feed_url=feed["url"]).items:
            try:
                out.append(clean_article(item, min_words=PipelineSettings().min_words))
            except NewsflowError:  # a discarded item is not enriched either
                continue
    return out


def main(argv: list[str] | None = None) -> int:
    from pipeline.enrich import load_model
    from pipeline.settings import PipelineSettings

    defaults = PipelineSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=defaults.nlp_batch_size)
    parser.add_argument("--ner-max-words", type=int, default=defaults.ner_max_words)
    parser.add_argument("--cache-size", type=int, default=defaults.ner_cache_paragraphs)
    parser.add_argument("--copies", type=float, default=0.2, help="share of edited copies in the copies run")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    load_model()  # model load is start-up cost, not throughput
    options = {"batch_size": args.batch_size, "ner_max_words": args.ner_max_words, "cache_size": args.cache_size}
    fresh_articles = _deduped(clean_articles(args.articles, seed=args.seed, unique=True))
    fresh = measure(fresh_articles, **options)
    print(f"fresh: {fresh}", file=sys.stderr)
    budget: dict[str, object] = {}
    if args.ner_max_words > 0:
        budget = agreement(fresh_articles, batch_size=args.batch_size, ner_max_words=args.ner_max_words)
        print(f"budget vs full-text NER (fresh): {budget}", file=sys.stderr)
    copies = measure(_deduped(clean_articles(args.articles, seed=args.seed, unique=True, copies=args.copies)),
                     **options)
    print(f"copies ({args.copies:.0%}): {copies}", file=sys.stderr)
    demo = measure(_deduped(demo_articles()), **options)
    print(f"demo feeds: {demo}", file=sys.stderr)
    per_core = fresh["articles_per_s_per_core"]
    print(json.dumps({
        "bench": "stage_enrich", **options,
        "articles_per_s_per_core": per_core, "words_per_s_per_core": fresh["words_per_s_per_core"],
        "avg_words": fresh["avg_words"], "target_articles_per_s_per_core": TARGET_PER_CORE,
        "target_met": isinstance(per_core, float) and per_core >= TARGET_PER_CORE,
        "cache_hit_rate_demo": demo["cache_hit_rate"], "cache_hit_rate_copies": copies["cache_hit_rate"],
        "fresh": fresh, "copies": {"share": args.copies, **copies}, "demo": demo,
        "budget_vs_full_text": budget,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
