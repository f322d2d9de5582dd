"""Dedupe: exact and near-duplicate decisions as pure logic over a small state interface that Faust tables back.

No Faust here: :class:`Deduper` talks to a :class:`DedupeStore` (Faust tables in production, the dict-backed
:class:`MemoryDedupeStore` in tests and benchmarks). The MinHash signature is computed by
:func:`minhash_signature` (CPU-bound: run it off the event loop), then :meth:`Deduper.decide` is a few dict
look-ups and one LSH query (cheap: fine on the loop).

Rules of :meth:`Deduper.decide`, in the order they are checked:

1. ``id = stable_id(canonical_url)`` if the article has a canonical URL, else ``stable_id(fingerprint)``.
2. The fingerprint is already known for this same id (a replay, a restart, the same item from two feeds, or an
   older version of a corrected article replayed) -> ``duplicate``.
3. Same canonical URL, different fingerprint -> ``update``: same id, ``version + 1``, same ``story_id`` and
   ``duplicate_of``; the corrected text replaces the old one (also in the LSH index).
4. Same fingerprint at another URL (same text syndicated verbatim) -> ``duplicate`` (one article).
5. MinHash-LSH neighbours with estimated Jaccard >= ``threshold`` -> ``near_duplicate``: ``story_id`` = the
   best neighbour's story, ``duplicate_of`` = the story's first article (its id is the ``story_id``).
6. Otherwise ``new``: ``story_id = id``, ``duplicate_of = None``.

Every decision that yields an article is written to the store before it is returned, so deciding the same
article again returns ``duplicate`` carrying the SAME ids in :attr:`Decision.existing` (at-least-once
replays are idempotent; an agent that crashed after the table write but before the send can re-emit it).

Signature text: the agents sign ``article.body`` (the cleaned text), so headline tweaks and outlet boilerplate
do not count; the syndicated copy of the seed article scores well above the threshold and an unrelated
article on the same topic far below it (see tests/pipeline/test_dedupe.py for the measured margins).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, Protocol

from datasketch import LeanMinHash, MinHash, MinHashLSH
from pydantic import BaseModel, ConfigDict

from pipeline.canonical import normalise_text, stable_id
from pipeline.errors import DedupeFailed
from pipeline.logs import get_logger
from pipeline.schemas import CleanArticle, DedupedArticle

__all__ = [
    "Decision",
    "DedupeStore",
    "Deduper",
    "MappingDedupeStore",
    "MemoryDedupeStore",
    "SignatureRecord",
    "UrlRecord",
    "article_id",
    "minhash_signature",
]

log = get_logger(__name__)

# datasketch >= 2 has several hash schemes; the scheme and seed must be the same wherever a signature is
# built or read back, or two signatures of one text would not compare.
_SCHEME = "affine32"
_SEED = 1

Action = Literal["new", "update", "duplicate", "near_duplicate"]


class UrlRecord(BaseModel):
    """What dedupe remembers per canonical URL (JSON-able: Faust tables store ``model_dump(mode="json")``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    fingerprint: str
    version: int = 1
    story_id: str
    duplicate_of: str | None = None


class SignatureRecord(BaseModel):
    """What dedupe remembers per article id for near-duplicate search (rebuilds the LSH index after a restart)."""

    model_config = ConfigDict(frozen=True)

    story_id: str
    signature: list[int]
    # The identity last decided for this id (written before anything else, so it is the newest): a replay of
    # the current text can be re-emitted with exactly these ids.
    fingerprint: str | None = None
    version: int = 1
    duplicate_of: str | None = None


class DedupeStore(Protocol):
    """The state dedupe needs. Faust tables back it in production; :class:`MemoryDedupeStore` in tests."""

    def get_url(self, canonical_url: str) -> UrlRecord | None: ...
    def put_url(self, canonical_url: str, record: UrlRecord) -> None: ...
    def get_fingerprint(self, fingerprint: str) -> str | None: ...  # -> article id
    def put_fingerprint(self, fingerprint: str, article_id: str) -> None: ...
    def get_signature(self, article_id: str) -> SignatureRecord | None: ...
    def put_signature(self, article_id: str, record: SignatureRecord) -> None: ...
    def signatures(self) -> Iterable[tuple[str, SignatureRecord]]: ...


class MappingDedupeStore:
    """A :class:`DedupeStore` over three mappings holding JSON dicts: plain dicts, or the Faust tables
    (``pipeline.app``), which hold exactly these values and write them to their changelog topics."""

    def __init__(self, urls: MutableMapping[str, Any] | None = None,
                 fingerprints: MutableMapping[str, Any] | None = None,
                 signatures: MutableMapping[str, Any] | None = None) -> None:
        self.urls: MutableMapping[str, Any] = {} if urls is None else urls
        self.fingerprints: MutableMapping[str, Any] = {} if fingerprints is None else fingerprints
        self.signature_table: MutableMapping[str, Any] = {} if signatures is None else signatures

    def get_url(self, canonical_url: str) -> UrlRecord | None:
        raw = self.urls.get(canonical_url)
        return UrlRecord.model_validate(raw) if raw is not None else None

    def put_url(self, canonical_url: str, record: UrlRecord) -> None:
        self.urls[canonical_url] = record.model_dump(mode="json")

    def get_fingerprint(self, fingerprint: str) -> str | None:
        return self.fingerprints.get(fingerprint)

    def put_fingerprint(self, fingerprint: str, article_id: str) -> None:
        self.fingerprints[fingerprint] = article_id

    def get_signature(self, article_id: str) -> SignatureRecord | None:
        raw = self.signature_table.get(article_id)
        return SignatureRecord.model_validate(raw) if raw is not None else None

    def put_signature(self, article_id: str, record: SignatureRecord) -> None:
        self.signature_table[article_id] = record.model_dump(mode="json")

    def signatures(self) -> Iterable[tuple[str, SignatureRecord]]:
        for key, raw in list(self.signature_table.items()):
            if raw is not None:  # a deleted table key reads back as None
                yield key, SignatureRecord.model_validate(raw)


class MemoryDedupeStore(MappingDedupeStore):
    """A dict-backed :class:`DedupeStore` for tests and benchmarks."""


class Decision(BaseModel):
    """What to do with one clean article.

    ``article`` is the article to send on (None for ``duplicate``). For a ``duplicate`` of the same URL (or the
    same URL-less text), ``existing`` is the article as it was first decided - same id, version, story_id and
    duplicate_of - so an agent that may have crashed between the table write and the send can re-emit it
    idempotently; it is None when the text was first seen at another URL (that URL's own message carries it).
    """

    model_config = ConfigDict(frozen=True)

    action: Action
    article: DedupedArticle | None = None
    existing: DedupedArticle | None = None
    similarity: float | None = None  # estimated Jaccard to the chosen neighbour (near_duplicate)


def article_id(article: CleanArticle) -> str:
    """The stable id of an article: from its canonical URL, else from its text fingerprint."""
    return stable_id(article.canonical_url) if article.canonical_url else stable_id(article.text_fingerprint)


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple:
    # Building the permutation parameters costs more than hashing a short article: do it once per size.
    return MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME).permutations


def minhash_signature(text: str, *, num_perm: int = 128, shingle_size: int = 5) -> list[int]:
    """MinHash (datasketch) of the word shingles of ``normalise_text(text)``. Pure and CPU-bound: run it off-loop.

    Args:
        text: the article body (clean text).
        num_perm: number of hash permutations (must match the :class:`Deduper`'s).
        shingle_size: words per shingle; texts shorter than that are one shingle.

    Returns:
        ``num_perm`` ints; an empty text gives the "empty" signature, which never matches anything.

    Example::

        >>> len(minhash_signature("NATO chief Mark Rutte said on Tuesday ...", num_perm=64))
        64
    """
    words = normalise_text(text).split()
    if len(words) <= shingle_size:
        shingles = {" ".join(words)} if words else set()
    else:
        shingles = {" ".join(words[i : i + shingle_size]) for i in range(len(words) - shingle_size + 1)}
    mh = MinHash(num_perm=num_perm, seed=_SEED, permutations=_permutations(num_perm), scheme=_SCHEME)
    mh.update_batch([s.encode("utf-8") for s in shingles])
    return [int(v) for v in mh.hashvalues]


class Deduper:
    """Exact and near-duplicate decisions over a :class:`DedupeStore` plus an in-memory MinHash-LSH index.

    The LSH index is derived state: :meth:`rebuild` recreates it from ``store.signatures()`` (call it on start
    and whenever the store's content changed under it, e.g. on Faust partition assignment).

    Example::

        store = MemoryDedupeStore()
        deduper = Deduper(store, threshold=0.5)
        decision = deduper.decide(article, minhash_signature(article.body))
        if decision.article is not None:
            send(decision.article)
    """

    def __init__(self, store: DedupeStore, *, threshold: float = 0.5, num_perm: int = 128) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.store = store
        self.threshold = threshold
        self.num_perm = num_perm
        self._lsh = self._new_lsh()
        self._empty = MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME).hashvalues.tolist()

    def _new_lsh(self) -> MinHashLSH:
        return MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)

    def rebuild(self) -> None:
        """(Re)build the in-memory LSH index from ``store.signatures()``."""
        self._lsh = self._new_lsh()
        count = 0
        for key, record in self.store.signatures():
            if len(record.signature) == self.num_perm and record.signature != self._empty:
                self._lsh.insert(key, self._minhash(record.signature), check_duplication=False)
                count += 1
        log.info("dedupe index rebuilt", signatures=count)

    def _minhash(self, signature: list[int]) -> LeanMinHash:
        return LeanMinHash(seed=_SEED, hashvalues=signature, scheme=_SCHEME)

    def _index(self, key: str, signature: list[int]) -> None:
        if key in self._lsh.keys:
            self._lsh.remove(key)
        if signature != self._empty:
            self._lsh.insert(key, self._minhash(signature), check_duplication=False)

    def _deduped(self, article: CleanArticle, *, id: str, version: int, story_id: str,
                 duplicate_of: str | None) -> DedupedArticle:
        return DedupedArticle(
            **article.model_dump(), id=id, version=version, story_id=story_id, duplicate_of=duplicate_of
        )

    def _nearest(self, signature: list[int], exclude: str) -> tuple[str, SignatureRecord, float] | None:
        """The indexed article most similar to ``signature`` at or above the threshold (ties: smallest id)."""
        if signature == self._empty:
            return None
        query = self._minhash(signature)
        best: tuple[float, str, SignatureRecord] | None = None
        # Sorted, and only a strictly better score replaces: ties go to the smallest id on every worker.
        for key in sorted(self._lsh.query(query)):
            if key == exclude:
                continue
            record = self.store.get_signature(key)
            if record is None or len(record.signature) != self.num_perm:
                continue
            # LSH candidates are approximate: confirm with the signatures' Jaccard estimate.
            sim = query.jaccard(self._minhash(record.signature))
            if sim >= self.threshold and (best is None or sim > best[0]):
                best = (sim, key, record)
        return (best[1], best[2], best[0]) if best else None

    def decide(self, article: CleanArticle, signature: list[int]) -> Decision:
        """Decide whether ``article`` is new, an update, a duplicate or a near-duplicate (see the module doc).

        Raises:
            DedupeFailed: the signature does not have ``num_perm`` values.
        """
        if len(signature) != self.num_perm:
            raise DedupeFailed(
                f"signature has {len(signature)} values, the deduper expects {self.num_perm}", stage="dedupe"
            )
        fp = article.text_fingerprint
        aid = article_id(article)
        url = article.canonical_url
        url_record = self.store.get_url(url) if url else None
        fp_owner = self.store.get_fingerprint(fp)

        # 2. A replay (or an older version of a corrected article): already decided, same ids.
        if fp_owner == aid:
            existing = None
            sig = self.store.get_signature(aid)
            # Only the current text is offered for re-emission: an old version replayed must not undo a correction.
            if sig is not None and sig.fingerprint == fp:
                existing = self._deduped(article, id=aid, version=sig.version, story_id=sig.story_id,
                                         duplicate_of=sig.duplicate_of)
            return Decision(action="duplicate", existing=existing)

        # 3. Same URL, new text: a correction replaces the article under the same id.
        if url and url_record is not None:
            version = url_record.version + 1
            out = self._deduped(article, id=aid, version=version, story_id=url_record.story_id,
                                duplicate_of=url_record.duplicate_of)
            self._remember(out, signature)
            return Decision(action="update", article=out)

        # 4. Same text already published at another URL: one article.
        if fp_owner is not None:
            return Decision(action="duplicate")

        # 5. Near-duplicate of a known story.
        nearest = self._nearest(signature, exclude=aid)
        if nearest is not None:
            _, record, sim = nearest
            out = self._deduped(article, id=aid, version=1, story_id=record.story_id, duplicate_of=record.story_id)
            self._remember(out, signature)
            return Decision(action="near_duplicate", article=out, similarity=sim)

        # 6. A new story.
        out = self._deduped(article, id=aid, version=1, story_id=aid, duplicate_of=None)
        self._remember(out, signature)
        return Decision(action="new", article=out)

    def _remember(self, article: DedupedArticle, signature: list[int]) -> None:
        # Signature record first: it carries the full identity, so if a crash lands between these writes the replay
        # is either decided again from scratch (same ids: the LSH query excludes the article's own id) or found
        # as a duplicate whose `existing` comes from this record.
        self.store.put_signature(
            article.id,
            SignatureRecord(story_id=article.story_id, signature=signature, fingerprint=article.text_fingerprint,
                            version=article.version, duplicate_of=article.duplicate_of),
        )
        self._index(article.id, signature)
        self.store.put_fingerprint(article.text_fingerprint, article.id)
        if article.canonical_url:
            self.store.put_url(
                article.canonical_url,
                UrlRecord(id=article.id, fingerprint=article.text_fingerprint, version=article.version,
                          story_id=article.story_id, duplicate_of=article.duplicate_of),
            )

