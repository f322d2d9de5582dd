"""A bounded, per-process cache of the entity mentions NER found in a paragraph, keyed by the paragraph's hash.

Syndicated copies, corrections and live-blog updates repeat most paragraphs of an article already enriched: the
enrich stage looks every paragraph up here and runs the model only on the ones it has not seen. Kept per pool
process (no locks, no IPC): each process warms its own, and a key is the BLAKE2b digest of the model name and
the exact paragraph text, so another model or one changed character is another key.

Least recently used entries go first once ``max_entries`` is reached; ``max_entries=0`` turns the cache off.
An entry is a tuple of ``(text, label)`` pairs: ~100-300 bytes for a typical paragraph, so the default
(``pipeline.ner_cache_paragraphs``) of 50,000 paragraphs stays within ~15 MB per process.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CacheStats", "MentionCache", "Mentions", "paragraph_key"]

Mentions = tuple[tuple[str, str], ...]  # (mention text, NER label), in paragraph order


def paragraph_key(model: str, text: str) -> bytes:
    """The cache key of ``text`` read by ``model``: a 16-byte BLAKE2b digest (collisions are negligible)."""
    return hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=16).digest()


@dataclass(slots=True)
class CacheStats:
    """Lookups since the process started (or since :meth:`MentionCache.clear`)."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class MentionCache:
    """An LRU map from :func:`paragraph_key` to :data:`Mentions`, at most ``max_entries`` long.

    >>> cache = MentionCache(max_entries=2)
    >>> cache.get(b"k") is None
    True
    >>> cache.put(b"k", (("NATO", "ORG"),))
    >>> cache.get(b"k")
    (('NATO', 'ORG'),)
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._entries: OrderedDict[bytes, Mentions] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Mentions | None:
        """The cached mentions of ``key`` (counted as a hit), or None (counted as a miss)."""
        found = self._entries.get(key)
        if found is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return found

    def peek(self, key: bytes) -> Mentions | None:
        """The cached mentions of ``key`` without counting a lookup or refreshing its age."""
        return self._entries.get(key)

    def put(self, key: bytes, mentions: Mentions) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = mentions
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def resize(self, max_entries: int) -> None:
        """Change the bound (dropping the least recently used entries past it)."""
        self.max_entries = max_entries
        while len(self._entries) > max(0, max_entries):
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self.stats = CacheStats()
