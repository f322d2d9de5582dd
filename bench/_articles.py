"""Realistic 300-1,500 word article bodies for the dedupe and enrich stage benchmarks (shared helper).

Bodies are sampled, without repeats inside one article, from the hand-written paragraphs of the extraction
corpus and the entity corpus, so the NLP sees varied real-looking news text with many names in it.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“])")


def paragraph_pool() -> list[str]:
    pool: list[str] = []
    for path in sorted((ROOT / "bench" / "corpus" / "extraction").glob("*.expected.txt")):
        pool += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if len(p.split()) >= 12]
    for path in sorted((ROOT / "bench" / "corpus" / "entities").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))["body"]
        pool += [p.strip() for p in body.split("\n\n") if len(p.split()) >= 12]
    return pool


def bodies(n: int, *, seed: int = 7, min_words: int = 300, max_words: int = 1500) -> list[str]:
    pool = paragraph_pool()

    def paragraphs(rng: random.Random) -> Iterator[str]:
        while True:  # the whole pool in a new order, again and again
            yield from rng.sample(pool, len(pool))

    return _assemble(n, seed, min_words, max_words, paragraphs)


def sentence_pool() -> list[str]:
    return [s.strip() for p in paragraph_pool() for s in _SENTENCE.split(p) if len(s.split()) >= 5]


def unique_bodies(n: int, *, seed: int = 7, min_words: int = 300, max_words: int = 1500) -> list[str]:
    """Like :func:`bodies`, but every paragraph is new: 2-4 sentences drawn from the whole pool.

    The paragraph pool has only ~440 paragraphs (~12k words), so :func:`bodies` repeats paragraphs across articles;
    a per-paragraph cache would find them and flatter the enrich stage. Sentence combinations do not repeat.
    """
    pool = sentence_pool()

    def paragraphs(rng: random.Random) -> Iterator[str]:
        while True:
            yield " ".join(rng.sample(pool, rng.randint(2, 4)))

    return _assemble(n, seed, min_words, max_words, paragraphs)


def _assemble(n: int, seed: int, min_words: int, max_words: int,
              paragraphs: Callable[[random.Random], Iterator[str]]) -> list[str]:
    """``n`` bodies of ``min_words``-``max_words`` words (a random target each), paragraphs taken in turn until the
    target is reached. A paragraph is drawn only when still needed, so the random stream (and every body) depends
    on ``seed`` alone."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        target = rng.randint(min_words, max_words)
        source = paragraphs(rng)
        chosen: list[str] = []
        words = 0
        while words < target:
            paragraph = next(source)
            chosen.append(paragraph)
            words += len(paragraph.split())
        out.append("\n".join(chosen))
    return out


def edited_copy(body: str, rng: random.Random) -> str:
    """A syndicated or corrected copy: one sentence of one paragraph replaced, sometimes the last paragraph cut."""
    paragraphs = body.split("\n")
    i = rng.randrange(len(paragraphs))
    sentences = _SENTENCE.split(paragraphs[i])
    sentences[rng.randrange(len(sentences))] = rng.choice(sentence_pool())
    paragraphs[i] = " ".join(sentences)
    if len(paragraphs) > 3 and rng.random() < 0.5:
        paragraphs.pop()
    return "\n".join(paragraphs)


def clean_articles(n: int, *, seed: int = 7, unique: bool = False, copies: float = 0.0) -> list:
    """``n`` CleanArticles; ``unique``: no paragraph repeats (:func:`unique_bodies`); ``copies``: this share of
    the list are edited copies (:func:`edited_copy`) of an earlier article, with ``-copy`` in their URL."""
    from pipeline.canonical import text_fingerprint
    from pipeline.schemas import CleanArticle

    now = datetime.now(UTC)
    return [
        CleanArticle(feed_url="https://bench.invalid/feed", url=f"https://bench.invalid/a/{i}{'-copy' * copy}",
                     canonical_url=f"https://bench.invalid/a/{i}{'-copy' * copy}", title=body.split(".")[0][:90],
                     body=body, ingested_at=now, word_count=len(body.split()), text_fingerprint=text_fingerprint(body))
        for i, (body, copy) in enumerate(_stream(n, seed, unique, copies))
    ]


def _stream(n: int, seed: int, unique: bool, copies: float) -> list[tuple[str, bool]]:
    """(body, is a copy) pairs: originals in order, each copy inserted at a random place after its original."""
    rng = random.Random(seed + 1)
    n_copies = round(n * copies)
    out = [(body, False) for body in (unique_bodies if unique else bodies)(n - n_copies, seed=seed)]
    for _ in range(n_copies):
        at = rng.randrange(1, len(out) + 1)
        original = rng.choice([body for body, copy in out[:at] if not copy])
        out.insert(at, (edited_copy(original, rng), True))
    return out
