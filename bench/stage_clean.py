"""Throughput of the clean stage alone: clean_article on realistic 300-1,500 word news pages, in articles/s.

Pages are built from the extraction corpus' hand-written paragraphs (sampled without repeats, so the
extractor sees distinct text) inside full news-page furniture: header, navigation, weather widget,
breadcrumbs, "Read more" teasers with captions, share bar, promo boxes, popular list, comments,
footer and scripts. Run single-process (what one pool worker does) or with ``--workers N`` processes.

    python bench/stage_clean.py [--pages 300] [--workers 1] [--seed 7]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "corpus" / "extraction"
sys.path.insert(0, str(ROOT))


def _paragraph_pool() -> list[str]:
    pool: list[str] = []
    for path in sorted(CORPUS.glob("*.expected.txt")):
        pool += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if len(p.split()) >= 12]
    return pool


def _teaser(n: int) -> str:
    return (
        f'<div class="read-more"><div class="read-more__title">Read more</div><a href="/news/{n}">'
        f'<figure><img src="/i/{n}.jpg" alt=""><figcaption>Agency photo.</figcaption></figure>'
        f"<div>Teaser headline number {n} about another story</div></a></div>"
    )


def build_page(rng: random.Random, pool: list[str], n: int, *, body: list[str] | None = None) -> tuple[str, int]:
    """One page with an article of 300-1,500 words drawn from ``pool`` (or exactly the paragraphs ``body``);
    returns (html, article words)."""
    target = rng.randint(300, 1500)
    chosen, words = [], 0
    for paragraph in body if body is not None else rng.sample(pool, len(pool)):
        if body is None and words >= target:
            break
        chosen.append(paragraph)
        words += len(paragraph.split())
    parts = []
    for i, paragraph in enumerate(chosen):
        parts.append(f"<p>{html.escape(paragraph, quote=False)}</p>")
        if i in (3, 9):
            parts.append(_teaser(n * 10 + i))
    nav = "".join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(12))
    popular = "".join(f'<li><a href="/p{i}">Popular story {i} that many people read today</a></li>' for i in range(6))
    comments = "".join(
        f'<div class="comment"><span>user{i}</span><p>Comment {i}: I do not agree with this at all.</p></div>'
        for i in range(rng.randint(0, 15))
    )
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Story {n} - Bench News</title>
<meta property="og:title" content="Story {n}"><meta property="og:site_name" content="Bench News">
<meta property="article:published_time" content="2026-02-04T16:33:00+00:00">
<meta name="description" content="A standfirst for story {n} without a full stop">
<script>window.dataLayer=[];{"var x = 1;" * 200}</script><style>{".c{{color:red}}" * 100}</style></head>
<body><header><div class="weather"><span>21.1 C</span><span>Delhi</span></div><nav><ul>{nav}</ul></nav></header>
<div class="breadcrumbs"><a href="/">Home</a><a href="/news">News</a><span>Story {n}</span></div>
<main><article><h1>Story {n}</h1><div class="summary">A standfirst for story {n} without a full stop</div>
<div class="byline">By Bench Reporter · February 04, 2026 at 04:33PM</div>
<div class="share"><a href="#">Facebook</a><a href="#">X</a><a href="#">Telegram</a></div>
<div class="article__text">{"".join(parts)}</div></article>
<section class="promo"><h3>Article Word Jumble</h3><p>Test your skills by unscrambling words found in this article!</p>
</section><aside><h3>Most Popular Articles</h3><ol>{popular}</ol></aside>
<section class="comments"><h3>Comments</h3>{comments}</section></main>
<footer><p>&copy; 2026 Bench News. All rights reserved.</p></footer><script src="/app.js"></script></body></html>"""
    return page, words


def _clean_batch(pages: list[str]) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds) per page: CPU time is what the stage costs when the machine is shared."""
    from pipeline.clean import clean_article
    from pipeline.schemas import RawItem
    from pipeline.settings import PipelineSettings

    min_words = PipelineSettings().min_words
    took = []
    for n, page in enumerate(pages):
        item = RawItem(feed_url="https://bench.invalid/feed", link=f"https://bench.invalid/story/{n}", content=page)
        started, cpu_started = time.perf_counter(), time.process_time()
        clean_article(item, min_words=min_words)
        took.append((time.perf_counter() - started, time.process_time() - cpu_started))
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    pool = _paragraph_pool()
    built = [build_page(rng, pool, n) for n in range(args.pages)]
    pages = [page for page, _ in built]
    words = [count for _, count in built]
    _clean_batch(pages[:5])  # warm-up: imports, langdetect profiles, lxml

    started = time.perf_counter()
    if args.workers <= 1:
        took = _clean_batch(pages)
    else:
        chunks = [pages[i :: args.workers] for i in range(args.workers)]
        with ProcessPoolExecutor(args.workers) as pool_executor:
            pool_executor.submit(_clean_batch, pages[:2]).result()  # warm one worker before timing
            started = time.perf_counter()
            took = [t for chunk in pool_executor.map(_clean_batch, chunks) for t in chunk]
    elapsed = time.perf_counter() - started
    took_ms = sorted(wall * 1000 for wall, _ in took)
    cpu_ms = statistics.mean(cpu * 1000 for _, cpu in took)
    result = {
        "bench": "stage_clean",
        "pages": len(pages),
        "workers": args.workers,
        "mean_words": round(statistics.mean(words)),
        "mean_html_kb": round(statistics.mean(len(p) for p in pages) / 1024, 1),
        "articles_per_s": round(len(pages) / elapsed, 1),
        "ms_p50": round(took_ms[len(took_ms) // 2], 2),
        "ms_p95": round(took_ms[int(len(took_ms) * 0.95)], 2),
        "cpu_ms_mean": round(cpu_ms, 2),
        "cpu_bound_articles_per_s_per_core": round(1000 / cpu_ms, 1),
        "cpus": os.cpu_count(),
        "note": "2-core machine shared with other helpers' jobs; numbers are lower bounds",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
