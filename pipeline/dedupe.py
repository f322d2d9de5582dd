"""Dedupe: exact and near-duplicate decisions as pure logic over a small state interface that Faust tables back.

No Faust here: :class:`Deduper` talks to a :class:`DedupeStore` (Faust tables in production, the dict-backed
:class:`MappingDedupeStore` in tests and benchmarks). The MinHash signature is computed by
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

The dedupe agent calls :func:`decide_article` (agent-side, on the event loop): the signature, computed in the pool
only when the clean stage's is missing, the index refreshed when stale, the decision, its metric and log line.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from datasketch import MinHash, MinHashLSH
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from pipeline.canonical import normalise_text, stable_id
from pipeline.dedupe_index import BandIndex
from pipeline.errors import DedupeFailed
from pipeline.logs import get_logger
from pipeline.schemas import CleanArticle, DedupedArticle

if TYPE_CHECKING:
    from pipeline.offload import Offload

__all__ = [
    "Decision",
    "DedupeStore",
    "Deduper",
    "MappingDedupeStore",
    "SignatureRecord",
    "UrlRecord",
    "article_id",
    "decide_article",
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
    """What dedupe remembers per article id for near-duplicate search (rebuilds the LSH index after a restart).

    In JSON the signature is the hex of its little-endian uint32 values (1,024 characters for 128 values, decoded
    for a whole batch at once by a rebuild: ~10x faster than parsing a JSON list); a list, as older records
    hold, is read too.
    """

    model_config = ConfigDict(frozen=True)

    story_id: str
    signature: list[int]
    # The identity last decided for this id (written before anything else, so it is the newest): a replay of
    # the current text can be re-emitted with exactly these ids.
    fingerprint: str | None = None
    version: int = 1
    duplicate_of: str | None = None
    # For retention: the day (days since the epoch, UTC) the article was last decided, its URL and the
    # fingerprints of its earlier versions, so expiry can delete every table entry of the article.
    day: int | None = None
    canonical_url: str | None = None
    previous_fingerprints: list[str] = Field(default_factory=list)

    @field_validator("signature", mode="before")
    @classmethod
    def _decode_signature(cls, value: Any) -> Any:
        return _unpack_signature(value).tolist() if isinstance(value, str) else value

    @field_serializer("signature", when_used="json")
    def _encode_signature(self, value: list[int]) -> str | list[int]:
        if value and min(value) >= 0 and max(value) <= 0xFFFFFFFF:
            return np.asarray(value, dtype="<u4").tobytes().hex()
        return value


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _unpack_signature(value: str) -> np.ndarray:
    try:
        return np.frombuffer(bytes.fromhex(value), dtype="<u4")
    except ValueError as exc:
        raise ValueError(f"signature is neither a list nor the hex of uint32 values: {exc}") from exc


class DedupeStore(Protocol):
    """The state dedupe needs. Faust tables back it in production; :class:`MappingDedupeStore` in tests."""

    def get_url(self, canonical_url: str) -> UrlRecord | None: ...
    def put_url(self, canonical_url: str, record: UrlRecord) -> None: ...
    def get_fingerprint(self, fingerprint: str) -> str | None: ...  # -> article id
    def put_fingerprint(self, fingerprint: str, article_id: str) -> None: ...
    def get_signature(self, article_id: str) -> SignatureRecord | None: ...
    def put_signature(self, article_id: str, record: SignatureRecord) -> None: ...
    def signatures(self) -> Iterable[tuple[str, SignatureRecord]]: ...
    def signature_batches(self, num_perm: int, size: int) -> Iterator[tuple[list[str], list[int | None], np.ndarray]]:
        ...  # (ids, days, (n, num_perm) signatures) in batches, for a fast rebuild

    def delete_url(self, canonical_url: str) -> None: ...
    def delete_fingerprint(self, fingerprint: str) -> None: ...
    def delete_signature(self, article_id: str) -> None: ...


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

    def signature_batches(self, num_perm: int, size: int) -> Iterator[tuple[list[str], list[int | None], np.ndarray]]:
        """The signature table in batches of ``size``: ids, days and a ``(n, num_perm)`` uint32 matrix.

        Reads the JSON dicts directly (no model validation): a rebuild of a million records takes seconds.
        Iterates lazily (no copy of the table): nothing may write to the table until the iteration ends, which
        holds for the dedupe agent's own rebuild. Records of another size or not decodable are skipped.
        """
        ids: list[str] = []
        days: list[int | None] = []
        texts: list[str] = []  # hex signatures: one bytes.fromhex per batch
        lists: dict[int, list[int]] = {}  # row -> signature stored as a JSON list (older records)
        width = 8 * num_perm

        def batch() -> tuple[list[str], list[int | None], np.ndarray]:
            nonlocal ids, days
            try:
                packed = bytes.fromhex("".join(texts))
            except ValueError:  # some record is not hex: decode one by one and leave those out
                good = [i for i, t in enumerate(texts) if _is_hex(t)]
                ids, days = [ids[i] for i in good], [days[i] for i in good]
                lists_ = {good.index(r): v for r, v in lists.items() if r in good}
                lists.clear()
                lists.update(lists_)
                packed = bytes.fromhex("".join(texts[i] for i in good))
            sigs = np.frombuffer(packed, dtype="<u4").reshape(-1, num_perm)
            if lists:
                sigs = sigs.copy()
                for row, values in lists.items():
                    sigs[row] = values
            return ids, days, sigs

        for key, raw in self.signature_table.items():
            if not isinstance(raw, dict):
                continue
            sig = raw.get("signature")
            if isinstance(sig, str):
                if len(sig) != width:
                    continue
                texts.append(sig)
            elif isinstance(sig, list) and len(sig) == num_perm:
                if not all(isinstance(v, int) and 0 <= v <= 0xFFFFFFFF for v in sig):
                    continue
                lists[len(ids)] = sig
                texts.append("0" * width)
            else:
                continue
            ids.append(key)
            day = raw.get("day")
            days.append(day if isinstance(day, int) else None)
            if len(ids) >= size:
                yield batch()
                ids, days, texts, lists = [], [], [], {}
        if ids:
            yield batch()

    def delete_url(self, canonical_url: str) -> None:
        if canonical_url in self.urls:
            del self.urls[canonical_url]

    def delete_fingerprint(self, fingerprint: str) -> None:
        if fingerprint in self.fingerprints:
            del self.fingerprints[fingerprint]

    def delete_signature(self, article_id: str) -> None:
        if article_id in self.signature_table:
            del self.signature_table[article_id]


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
def _permutations(num_perm: int) -> np.ndarray:
    # Building the permutation parameters costs more than hashing a short article: do it once per size.
    permutations: np.ndarray = MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME).permutations  # (2, num_perm)
    return permutations


def minhash_signature(text: str, *, num_perm: int, shingle_size: int) -> list[int]:
    """MinHash (datasketch) of the word shingles of ``normalise_text(text)``. Pure and CPU-bound: run it off-loop.

    Args:
        text: the article body (clean text).
        num_perm: number of hash permutations (``pipeline.minhash_permutations``; must match the
            :class:`Deduper`'s).
        shingle_size: words per shingle (``pipeline.shingle_size``); texts shorter than that are one shingle.

    Returns:
        ``num_perm`` ints; an empty text gives the "empty" signature, which never matches anything.

    Example::

        >>> len(minhash_signature("NATO chief Mark Rutte said on Tuesday ...", num_perm=64, shingle_size=5))
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

    The LSH index (:class:`pipeline.dedupe_index.BandIndex`, ~212 bytes per article) is derived state:
    :meth:`rebuild` recreates it from the store (call it on start and whenever the store's content changed
    under it, e.g. on Faust partition assignment); :meth:`rebuild_steps` does the same in slices, so an event
    loop can run between them. An owner whose store can change under it says so with :meth:`mark_stale` and
    runs :meth:`refresh_steps` before each decision: a rebuild when one is due, else nothing. The index starts
    stale (empty); a change marked during a rebuild, or a rebuild that failed or was abandoned, leaves it stale.

    Retention (``retention_days``; None keeps everything): an article is remembered for at least that many
    whole days after the day it was last decided (new, update or near-duplicate; replays do not extend it).
    When the day turns, the index drops the expired days at once (they are never matched again) and their
    table entries are deleted in slices of ``cleanup_batch`` articles per decision, so expiry costs
    O(expired). An article seen again after its window is decided like any other: ``new`` once its entries
    are deleted, or an exact-URL ``duplicate``/``update`` while they are still being deleted.

    Example::

        p = settings.pipeline
        deduper = Deduper(MappingDedupeStore(), threshold=p.near_duplicate_threshold, num_perm=p.minhash_permutations)
        signature = minhash_signature(article.body, num_perm=p.minhash_permutations, shingle_size=p.shingle_size)
        decision = deduper.decide(article, signature)
        if decision.article is not None:
            send(decision.article)
    """

    def __init__(self, store: DedupeStore, *, threshold: float, num_perm: int,
                 retention_days: int | None = None, clock: Callable[[], float] = time.time,
                 cleanup_batch: int = 64) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if retention_days is not None and retention_days < 1:
            raise ValueError(f"retention_days must be >= 1, got {retention_days}")
        self.store = store
        self.threshold = threshold
        self.num_perm = num_perm
        self.retention_days = retention_days
        self.cleanup_batch = cleanup_batch
        self._clock = clock
        # Same band split as datasketch's MinHashLSH at this threshold (25 bands of 5 rows for 0.5 / 128): the
        # same candidates as before, hence the same recall.
        params = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._index = BandIndex(params.b, params.r)
        self._empty = MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME).hashvalues.tolist()
        self._day = self._today()
        self._expired: deque[tuple[int, list[str]]] = deque()
        # Staleness as counts, not a flag: a rebuild records the count it started from when it completes, so a
        # mark during it, or a rebuild that never completes, needs no clean-up to leave the index stale.
        self._changes = 1
        self._rebuilt_at = 0

    @property
    def index(self) -> BandIndex:
        return self._index

    @property
    def stale(self) -> bool:
        """True until a rebuild that started after the last :meth:`mark_stale` has completed."""
        return self._rebuilt_at != self._changes

    def mark_stale(self) -> None:
        """The store changed under the index (e.g. Faust tables recovered from their changelog after a rebalance)."""
        self._changes += 1

    def refresh_steps(self) -> Iterator[int]:
        """:meth:`rebuild_steps` when the index is :attr:`stale`, else no step."""
        return self.rebuild_steps() if self.stale else iter(())

    def _today(self) -> int:
        return int(self._clock() // 86400)

    def _cutoff(self, today: int) -> int | None:
        """Days before this one are expired (None: no retention)."""
        return None if self.retention_days is None else today - self.retention_days

    def rebuild(self) -> None:
        """(Re)build the in-memory LSH index from the store's signatures."""
        for _ in self.rebuild_steps():
            pass

    def rebuild_steps(self, batch: int = 20_000) -> Iterator[int]:
        """:meth:`rebuild` in slices: yields the records read so far after each batch of ``batch`` records."""
        started = time.perf_counter()
        changes = self._changes
        self._index.clear()
        self._expired.clear()
        today = self._day = self._today()
        cutoff = self._cutoff(today)
        count = 0
        expired: dict[int, list[str]] = {}
        empty = np.asarray(self._empty, dtype=np.uint32)
        for ids, days, sigs in self.store.signature_batches(self.num_perm, batch):
            # Records from before retention existed have no day: they count as decided today.
            day_of = np.asarray([today if d is None else d for d in days], dtype=np.int64)
            live = ~(sigs == empty).all(axis=1)
            if cutoff is not None:
                for i in np.flatnonzero(day_of < cutoff):
                    expired.setdefault(int(day_of[i]), []).append(ids[i])
                live &= day_of >= cutoff
            for day in np.unique(day_of[live]):
                rows = np.flatnonzero(live & (day_of == day))
                self._index.add_many(int(day), [ids[i] for i in rows], sigs[rows])
            count += len(ids)
            yield count
        # One array and one filter per past day, one step each (a step merges and sorts one day's entries).
        for day in self._index.days:
            if day < today:
                self._index.close_day(day)
            else:
                self._index.merge_day(day)
            yield count
        self._expired.extend(sorted(expired.items()))
        self._rebuilt_at = changes
        log.info("dedupe index rebuilt", signatures=count, indexed=len(self._index),
                 seconds=round(time.perf_counter() - started, 2),
                 index_bytes=self._index.nbytes(), expired=sum(len(v) for v in expired.values()))

    def _tick(self) -> None:
        """On a new day: compact the closed days, drop the expired ones, queue their table entries."""
        today = self._today()
        if today != self._day:
            self._day = today
            self._index.close_days(today)
            cutoff = self._cutoff(today)
            if cutoff is not None:
                dropped = self._index.expire(cutoff)
                if dropped:
                    log.info("dedupe days expired", days=[d for d, _ in dropped],
                             articles=sum(len(ids) for _, ids in dropped))
                self._expired.extend(dropped)

    def expire(self, limit: int | None = None) -> int:
        """Delete the table entries of up to ``limit`` expired articles (all when None); returns how many."""
        done = 0
        cutoff = self._cutoff(self._day)
        while self._expired and (limit is None or done < limit):
            _, ids = self._expired[0]
            while ids and (limit is None or done < limit):
                self._forget(ids.pop(), cutoff)
                done += 1
            if not ids:
                self._expired.popleft()
        return done

    @property
    def expiring(self) -> int:
        """Expired articles whose table entries are still to be deleted."""
        return sum(len(ids) for _, ids in self._expired)

    def _forget(self, aid: str, cutoff: int | None) -> None:
        record = self.store.get_signature(aid)
        if record is None or cutoff is None:
            return
        if record.day is not None and record.day >= cutoff:
            return  # decided again since (a correction): it lives on under its newer day
        for fp in (record.fingerprint, *record.previous_fingerprints):
            if fp is not None and self.store.get_fingerprint(fp) == aid:
                self.store.delete_fingerprint(fp)
        if record.canonical_url:
            url_record = self.store.get_url(record.canonical_url)
            if url_record is not None and url_record.id == aid:
                self.store.delete_url(record.canonical_url)
        self.store.delete_signature(aid)

    def _index_signature(self, key: str, signature: list[int], keys: np.ndarray | None) -> None:
        # An older entry of the same id (before a correction) stays until its day expires: candidates are
        # checked against the store's current signature, so it can only cost a look-up.
        if signature != self._empty:
            self._index.add(self._day, key, self._index.keys(signature) if keys is None else keys)

    def _deduped(self, article: CleanArticle, *, id: str, version: int, story_id: str,
                 duplicate_of: str | None) -> DedupedArticle:
        return DedupedArticle(
            **article.model_dump(), id=id, version=version, story_id=story_id, duplicate_of=duplicate_of
        )

    def _nearest(self, signature: list[int], query: np.ndarray, keys: np.ndarray,
                 exclude: str) -> tuple[str, SignatureRecord, float] | None:
        """The indexed article most similar to ``signature`` (``query``: the same as an array, ``keys``: its band
        hashes) at or above the threshold (ties: smallest id)."""
        if signature == self._empty:
            return None
        best: tuple[float, str, SignatureRecord] | None = None
        # Sorted, and only a strictly better score replaces: ties go to the smallest id on every worker.
        for key in sorted(self._index.query(keys)):
            if key == exclude:
                continue
            record = self.store.get_signature(key)
            if record is None or len(record.signature) != self.num_perm:
                continue
            # LSH candidates are approximate: confirm with the signatures' Jaccard estimate (the share of equal
            # values, as datasketch's MinHash.jaccard).
            sim = float(np.count_nonzero(query == np.asarray(record.signature, dtype=np.uint64))) / self.num_perm
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
        self._tick()
        if self._expired:
            self.expire(self.cleanup_batch)
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
            self._remember(out, signature, previous=self.store.get_signature(aid))
            return Decision(action="update", article=out)

        # 4. Same text already published at another URL: one article.
        if fp_owner is not None:
            return Decision(action="duplicate")

        # 5. Near-duplicate of a known story.
        values = np.asarray(signature, dtype=np.uint64)
        keys = self._index.keys(values)
        nearest = self._nearest(signature, values, keys, exclude=aid)
        if nearest is not None:
            _, record, sim = nearest
            out = self._deduped(article, id=aid, version=1, story_id=record.story_id, duplicate_of=record.story_id)
            self._remember(out, signature, keys=keys)
            return Decision(action="near_duplicate", article=out, similarity=sim)

        # 6. A new story.
        out = self._deduped(article, id=aid, version=1, story_id=aid, duplicate_of=None)
        self._remember(out, signature, keys=keys)
        return Decision(action="new", article=out)

    def _remember(self, article: DedupedArticle, signature: list[int],
                  previous: SignatureRecord | None = None, keys: np.ndarray | None = None) -> None:
        # Signature record first: it carries the full identity, so if a crash lands between these writes the replay
        # is either decided again from scratch (same ids: the LSH query excludes the article's own id) or found
        # as a duplicate whose `existing` comes from this record.
        older: list[str] = []
        if previous is not None:
            older = [*previous.previous_fingerprints, *([previous.fingerprint] if previous.fingerprint else [])]
            older = [fp for fp in dict.fromkeys(older) if fp != article.text_fingerprint]
        self.store.put_signature(
            article.id,
            SignatureRecord(story_id=article.story_id, signature=signature, fingerprint=article.text_fingerprint,
                            version=article.version, duplicate_of=article.duplicate_of, day=self._day,
                            canonical_url=article.canonical_url, previous_fingerprints=older),
        )
        self._index_signature(article.id, signature, keys)
        self.store.put_fingerprint(article.text_fingerprint, article.id)
        if article.canonical_url:
            self.store.put_url(
                article.canonical_url,
                UrlRecord(id=article.id, fingerprint=article.text_fingerprint, version=article.version,
                          story_id=article.story_id, duplicate_of=article.duplicate_of),
            )


async def decide_article(deduper: Deduper, article: CleanArticle, signature: list[int] | None, offload: Offload, *,
                         shingle_size: int) -> DedupedArticle | None:
    """Agent-side: the dedupe stage for one parsed article on the event loop; returns what to send on
    (``news.deduped``), or None.

    ``signature`` is the clean stage's (its header), or None when missing or unreadable: then it is computed in the
    pool. A stale index is rebuilt first, in slices between which the loop serves the other agents and the
    consumer's heartbeats. The decision is counted (``newsflow_dedupe_decisions_total``) and logged at debug; what
    it yields is the new article, or for a duplicate of the same URL the article as first decided (a replay
    re-emits the same ids), or None for a text first seen at another URL.
    """
    # Imported here: pool processes import this module for minhash_signature and need no metrics.
    from pipeline.metrics import ARTICLES_DEDUPED

    if signature is None:
        signature = await offload.run(minhash_signature, article.body, num_perm=deduper.num_perm,
                                      shingle_size=shingle_size)
    for _ in deduper.refresh_steps():
        await asyncio.sleep(0)
    # A decision that fails half-way needs no rebuild: an index entry is only ever a candidate, checked against the
    # signature table, and a rebuild would index the same signature record anyway.
    decision = deduper.decide(article, signature)
    ARTICLES_DEDUPED.labels(decision.action).inc()
    out = decision.article or decision.existing
    log.debug("dedupe decided", action=decision.action, article_id=out.id if out else None,
              story_id=out.story_id if out else None)
    return out
