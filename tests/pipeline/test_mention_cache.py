"""The per-process paragraph mention cache: bounded LRU, hit accounting, and its use by enrich_articles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.canonical import text_fingerprint
from pipeline.enrich import enrich_articles, mention_cache
from pipeline.mention_cache import MentionCache, paragraph_key
from pipeline.schemas import DedupedArticle


def test_key_depends_on_model_and_exact_text():
    assert paragraph_key("m", "NATO met.") == paragraph_key("m", "NATO met.")
    assert paragraph_key("m", "NATO met.") != paragraph_key("m", "NATO met!")
    assert paragraph_key("m", "NATO met.") != paragraph_key("other", "NATO met.")
    assert len(paragraph_key("m", "x")) == 16


def test_lru_bound_and_stats():
    cache = MentionCache(max_entries=2)
    cache.put(b"a", (("NATO", "ORG"),))
    cache.put(b"b", ())
    assert cache.get(b"a") == (("NATO", "ORG"),)  # refreshes "a": "b" is now the oldest
    cache.put(b"c", (("Kyiv", "GPE"),))
    assert len(cache) == 2
    assert cache.get(b"b") is None
    assert cache.get(b"c") == (("Kyiv", "GPE"),)
    assert (cache.stats.hits, cache.stats.misses) == (2, 1)
    assert cache.stats.hit_rate == pytest.approx(2 / 3)
    assert cache.peek(b"a") is not None and (cache.stats.hits, cache.stats.misses) == (2, 1)


def test_zero_size_disables_and_resize_evicts_oldest():
    off = MentionCache(max_entries=0)
    off.put(b"a", ())
    assert len(off) == 0 and off.get(b"a") is None
    cache = MentionCache(max_entries=3)
    for key in (b"a", b"b", b"c"):
        cache.put(key, ())
    cache.resize(1)
    assert len(cache) == 1 and cache.peek(b"c") == ()
    cache.clear()
    assert len(cache) == 0 and cache.stats.hit_rate == 0.0


def _article(i: int, body: str) -> DedupedArticle:
    return DedupedArticle(
        feed_url="https://t.invalid/feed", url=f"https://t.invalid/{i}", canonical_url=f"https://t.invalid/{i}",
        title="Ministers meet in Brussels", body=body, ingested_at=datetime.now(UTC), word_count=len(body.split()),
        text_fingerprint=text_fingerprint(body), id=str(i), story_id=str(i),
    )


BODY = (
    "Jens Stoltenberg met Olaf Scholz in Berlin on Monday to discuss air defence for Ukraine.\n"
    "Officials from Lockheed Martin and Rheinmetall joined the talks at the chancellery.\n"
    "The ministers will meet again in Brussels next month, a NATO spokesperson said."
)


def test_edited_copy_reuses_cached_paragraphs_with_the_same_entities():
    cache = mention_cache(1000)
    cache.clear()
    first = enrich_articles([_article(1, BODY)], cache_size=1000)[0]
    misses = cache.stats.misses
    assert cache.stats.hits == 0 and misses == 4  # title + three paragraphs, all new
    edited = BODY.replace("next month", "in June")  # one paragraph changed
    second = enrich_articles([_article(2, edited)], cache_size=1000)[0]
    assert cache.stats.hits == 3 and cache.stats.misses == misses + 1
    assert {e.name for e in first.entities} <= {e.name for e in second.entities}
    # A cached result equals the model's own: same article with the cache off.
    uncached = enrich_articles([_article(3, BODY)], cache_size=0)[0]
    assert [(e.name, e.label, e.count) for e in uncached.entities] == [
        (e.name, e.label, e.count) for e in first.entities
    ]
    mention_cache(1000).clear()


def test_same_paragraph_twice_in_a_batch_is_read_once():
    cache = mention_cache(1000)
    cache.clear()
    out = enrich_articles([_article(1, BODY), _article(2, BODY)], cache_size=1000)
    assert [e.name for e in out[0].entities] == [e.name for e in out[1].entities]
    assert cache.stats.misses == 4 and cache.stats.hits == 4
    cache.clear()
