"""A compact, day-bucketed MinHash-LSH band index for :class:`pipeline.dedupe.Deduper`.

datasketch's ``MinHashLSH`` keeps every band of every article as Python bytes in dicts of sets: ~8.8 KB per
article. Here one article costs ``bands`` entries of 6 bytes (a 32-bit hash of the band and a 16-bit row number
local to its day; 32-bit rows in a day of more than 65,536 articles) plus its 12-byte id: ~162 bytes with 25
bands. The candidates are the same as datasketch's (same band split); a 32-bit band hash can only add rare
extra candidates, and the caller confirms every candidate with the signatures' Jaccard estimate, so recall and
precision do not change.

Layout: one bucket per day the articles were decided on. A bucket holds sorted ``uint32`` hash arrays searched
with ``searchsorted`` and the matching row arrays, plus a small dict for the rows added since the last freeze.
Frozen chunks are merged geometrically while the day is current and into one array once it is closed,
so a query touches about one array per day of the retention window. Expiry drops whole days: O(expired).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BandIndex", "band_hashes"]

_ID_BYTES = 12  # pipeline.canonical.stable_id: 24 hex digits
_SHIFT = np.uint64(32)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # an odd 64-bit constant (splitmix64)


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """32-bit hashes of each band of each signature: ``(n, num_perm)`` -> ``(n, bands)`` ``uint64`` < 2**32.

    A random odd 64-bit multiplier per (band, row) position, summed, then mixed: two different bands or value
    tuples collide with probability ~2**-32, and a few numpy operations hash one signature or a million.
    (Integer overflow in numpy array arithmetic wraps around silently, which is what hashing wants.)
    """
    sig = np.ascontiguousarray(signatures[:, : bands * rows], dtype=np.uint64).reshape(len(signatures), bands, rows)
    mult = _multipliers(bands, rows)
    h: np.ndarray = sig[:, :, 0] * mult[:, 0]
    for j in range(1, rows):  # explicit: much faster than a reduction over the last axis
        h += sig[:, :, j] * mult[:, j]
    h ^= h >> _SHIFT
    h *= _MIX1
    h >>= _SHIFT
    return h


@functools.lru_cache(maxsize=8)
def _multipliers(bands: int, rows: int) -> np.ndarray:
    # Fixed seed: the hashes must be the same in every process and after every restart.
    odd = np.random.default_rng(0x5EED).integers(0, 2**63, (bands, rows), dtype=np.uint64)
    return odd * np.uint64(2) + np.uint64(1)


def _encode_ids(ids: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
    """Ids as 12-byte rows; an id that is not 24 hex digits (tests, foreign keys) is kept aside by row."""
    out = np.zeros((len(ids), _ID_BYTES), dtype=np.uint8)
    odd: dict[int, str] = {}
    for i, key in enumerate(ids):
        try:
            raw = bytes.fromhex(key) if len(key) == 2 * _ID_BYTES else b""
        except ValueError:
            raw = b""
        if len(raw) == _ID_BYTES and raw.hex() == key:
            out[i] = np.frombuffer(raw, dtype=np.uint8)
        else:
            odd[i] = key
    return out, odd


_BLOOM_HASHES = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)[:, None]


_MAX_FILTER_BITS = 1 << 32  # positions are computed in 64-bit products of two 32-bit numbers


def _bloom_positions(keys: np.ndarray, nbits: int) -> np.ndarray:
    """Bit positions of 32-bit band hashes in a filter of ``nbits`` bits: ``(3, n)``.

    Each hash's top 32 bits scaled to ``[0, nbits)`` (multiply and shift, not a modulo): any size works.
    """
    mixed = (keys[None, :].astype(np.uint64) * _BLOOM_HASHES) >> _SHIFT
    return ((mixed * np.uint64(nbits)) >> _SHIFT).astype(np.intp)


def _filter_bits(n: int) -> int:
    """Bits of a filter for ``n`` band hashes: 16 per hash, rounded up to a multiple of a quarter of the largest
    power of two below that.

    Quarter steps waste at most a quarter (a power of two wasted up to half: ~20 bits per hash at 33,000
    articles a day, 8 MB of filters more at a million articles over 30 days), and days of about the same
    size still get the same size, so their filters stack into one array.
    """
    want = 16 * max(1, n)
    step = max(64, 1 << max(0, want.bit_length() - 3))  # a multiple of 8: the filter is packed into bytes
    return min(_MAX_FILTER_BITS, -(-want // step) * step)


def _bloom(keys: np.ndarray) -> np.ndarray:
    """A Bloom filter of these band hashes (:func:`_filter_bits` bits, 3 hashes), packed little-endian."""
    nbits = _filter_bits(len(keys))
    flags = np.zeros(nbits, dtype=bool)
    flags[_bloom_positions(keys, nbits).ravel()] = True
    return np.packbits(flags, bitorder="little")


def _row_dtype(rows: int) -> type[np.unsignedinteger]:
    # A day of up to 65,536 articles (2 million a month) numbers its rows in 16 bits: 2 bytes per band saved.
    return np.uint16 if rows <= 1 << 16 else np.uint32


@dataclass
class _Segment:
    hashes: np.ndarray  # uint32, sorted: the band hashes
    rows: np.ndarray  # uint16 or uint32 (:func:`_row_dtype`): the row of each hash
    ids: np.ndarray  # (rows, 12) uint8
    odd: dict[int, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.ids)

    def id(self, row: int) -> str:
        return self.odd.get(row) or self.ids[row].tobytes().hex()

    def nbytes(self) -> int:
        return int(self.hashes.nbytes + self.rows.nbytes + self.ids.nbytes)

    @classmethod
    def build(cls, keys: np.ndarray, ids: Sequence[str]) -> _Segment:
        """From ``(rows, bands)`` band hashes and the rows' ids."""
        hashes = keys.astype(np.uint32).ravel()
        order = np.argsort(hashes, kind="stable")
        rows = (order // keys.shape[1]).astype(_row_dtype(len(ids)))
        encoded, odd = _encode_ids(ids)
        return cls(hashes[order], rows, encoded, odd)

    @classmethod
    def merge(cls, parts: Sequence[_Segment]) -> _Segment:
        if len(parts) == 1:
            return parts[0]
        rows, odd, offset = [], {}, 0
        dtype = _row_dtype(sum(p.count for p in parts))
        for part in parts:
            rows.append(part.rows.astype(dtype) + dtype(offset))  # rows renumbered
            odd.update({row + offset: key for row, key in part.odd.items()})
            offset += part.count
        hashes = np.concatenate([p.hashes for p in parts])
        order = np.argsort(hashes, kind="stable")  # sorted runs: timsort merges them in linear time
        return cls(hashes[order], np.concatenate(rows)[order], np.concatenate([p.ids for p in parts]), odd)

    def query_one(self, key: int, out: set[str]) -> None:
        # The needle in the array's own dtype: searchsorted with a Python int casts the whole uint32 array to
        # int64 first (a copy of the day's hashes per call: ~120 us instead of ~1 us at 33,000 articles a day).
        needle = self.hashes.dtype.type(key)
        lo = int(self.hashes.searchsorted(needle, side="left"))
        hi = int(self.hashes.searchsorted(needle, side="right"))
        for row in self.rows[lo:hi].tolist():
            out.add(self.id(row))

    def query(self, keys: np.ndarray, out: set[str]) -> None:
        lo = self.hashes.searchsorted(keys, side="left")
        hi = self.hashes.searchsorted(keys, side="right")
        for k in np.flatnonzero(hi > lo):
            for row in self.rows[lo[k] : hi[k]].tolist():
                out.add(self.id(row))


@dataclass
class _Day:
    segments: list[_Segment] = field(default_factory=list)
    # Rows added since the last freeze: band hash -> first row, band hash -> further rows (rare: those are
    # near-duplicates, or 32-bit collisions), and the rows' band hashes and ids.
    pending: dict[int, int] = field(default_factory=dict)
    more: dict[int, list[int]] = field(default_factory=dict)
    pending_keys: list[np.ndarray] = field(default_factory=list)
    pending_ids: list[str] = field(default_factory=list)

    @property
    def articles(self) -> int:
        return sum(s.count for s in self.segments) + len(self.pending_ids)


class BandIndex:
    """Band hashes of MinHash signatures -> article ids, bucketed by day.

    Args:
        bands, rows: the LSH band split (``bands * rows <= num_perm``), as datasketch's ``MinHashLSH`` picks it.
        chunk: rows collected in a dict before they are frozen into a sorted array.
    """

    def __init__(self, bands: int, rows: int, *, chunk: int = 4096) -> None:
        self.bands = bands
        self.rows = rows
        self.chunk = chunk
        self._days: dict[int, _Day] = {}
        # Closed days (one array each) also get a small Bloom filter of their band hashes (3 bits of 16 per
        # entry: ~0.5 % false positives). A query tests all closed days in a few numpy operations and searches
        # only the days that may hold a band: a binary search per day and band would cost a cache miss at
        # every step (~1 ms per query for 30 days of 33,000 articles).
        self._filters: dict[int, np.ndarray] = {}
        self._stacks: dict[int, tuple[list[int], np.ndarray]] | None = None

    def __len__(self) -> int:
        """Articles indexed (an article indexed twice, e.g. after a correction, counts twice)."""
        return sum(day.articles for day in self._days.values())

    @property
    def days(self) -> list[int]:
        return sorted(self._days)

    def nbytes(self) -> int:
        """Bytes held in the frozen arrays and filters (the pending dict of the current chunk is bounded by
        ``chunk``)."""
        return (sum(s.nbytes() for day in self._days.values() for s in day.segments)
                + sum(int(f.nbytes) for f in self._filters.values()))

    def keys(self, signature: Sequence[int] | np.ndarray) -> np.ndarray:
        """The band hashes of one signature."""
        keys: np.ndarray = band_hashes(np.asarray(signature, dtype=np.uint64)[None, :], self.bands, self.rows)[0]
        return keys

    def add(self, day: int, article_id: str, keys: np.ndarray) -> None:
        """Index one article under ``day`` by its band hashes (:meth:`keys`); an older entry of the same id is
        left in place: callers verify candidates against the current signature."""
        bucket = self._days.setdefault(day, _Day())
        row = len(bucket.pending_ids)
        bucket.pending_ids.append(article_id)
        bucket.pending_keys.append(keys)
        new = dict.fromkeys(keys.tolist(), row)
        for k in bucket.pending.keys() & new.keys():
            bucket.more.setdefault(k, []).append(row)
            del new[k]
        bucket.pending.update(new)
        if len(bucket.pending_ids) >= self.chunk:
            self._freeze(bucket)

    def add_many(self, day: int, article_ids: Sequence[str], signatures: np.ndarray) -> None:
        """Index many articles at once (a rebuild): ``signatures`` is ``(n, num_perm)``."""
        if len(article_ids):
            keys = band_hashes(signatures, self.bands, self.rows)
            self._days.setdefault(day, _Day()).segments.append(_Segment.build(keys, article_ids))

    def _freeze(self, bucket: _Day) -> None:
        if bucket.pending_ids:
            bucket.segments.append(_Segment.build(np.stack(bucket.pending_keys), bucket.pending_ids))
            bucket.pending, bucket.more, bucket.pending_keys, bucket.pending_ids = {}, {}, [], []
        # Geometric merging keeps O(log n) arrays per day and O(log n) merge work per article.
        segs = bucket.segments
        while len(segs) >= 2 and 2 * segs[-1].count >= segs[-2].count:
            segs[-2:] = [_Segment.merge(segs[-2:])]

    def close_days(self, before: int) -> None:
        """Compact every day before ``before`` into one array with its filter (no more articles are added)."""
        for day in [d for d in self._days if d < before]:
            self.close_day(day)

    def close_day(self, day: int) -> None:
        """Compact one day into one array with its filter (no more articles are added to it)."""
        bucket = self._days.get(day)
        if bucket is not None and day not in self._filters:
            self._freeze(bucket)
            if bucket.segments:
                bucket.segments = [_Segment.merge(bucket.segments)]
                self._filters[day] = _bloom(bucket.segments[0].hashes)
                self._stacks = None

    def expire(self, before: int) -> list[tuple[int, list[str]]]:
        """Drop the days before ``before``; returns each dropped day with its article ids (for the tables)."""
        dropped = []
        for day in sorted(d for d in self._days if d < before):
            bucket = self._days.pop(day)
            if self._filters.pop(day, None) is not None:
                self._stacks = None
            ids = list(bucket.pending_ids)
            for seg in bucket.segments:
                ids.extend(seg.id(row) for row in range(seg.count))
            dropped.append((day, ids))
        return dropped

    def query(self, keys: np.ndarray) -> set[str]:
        """Ids of the articles sharing at least one band hash (:meth:`keys`) with these (candidates, to verify)."""
        keys32 = keys.astype(np.uint32)
        found: set[str] = set()
        plain = keys.tolist()
        if self._filters:
            for nbits, (days, stack) in self._stacked().items():
                pos = _bloom_positions(keys, nbits)  # (hashes, bands)
                maybe = ((stack[:, pos >> 3] >> (pos & 7).astype(np.uint8)) & 1).all(axis=1)  # (days, bands)
                for d, b in zip(*np.nonzero(maybe), strict=True):
                    self._days[days[d]].segments[0].query_one(plain[b], found)
        for day, bucket in self._days.items():
            if day in self._filters:
                continue
            for seg in bucket.segments:
                seg.query(keys32, found)
            if bucket.pending:
                for k in plain:
                    row = bucket.pending.get(k)
                    if row is not None:
                        found.add(bucket.pending_ids[row])
                        for other in bucket.more.get(k, ()):
                            found.add(bucket.pending_ids[other])
        return found

    def _stacked(self) -> dict[int, tuple[list[int], np.ndarray]]:
        # Filters of one size stacked in one 2-D array (rebuilt when a day closes or expires: once a day).
        if self._stacks is None:
            groups: dict[int, list[int]] = {}
            for day, f in self._filters.items():
                groups.setdefault(f.size, []).append(day)
            self._stacks = {size * 8: (days, np.stack([self._filters[d] for d in days]))
                            for size, days in groups.items()}
            # Each day's filter becomes a view of its stack row: the filters are held once, not twice.
            for days, stack in self._stacks.values():
                self._filters.update(zip(days, stack, strict=True))
        return self._stacks

    def clear(self) -> None:
        self._days.clear()
        self._filters.clear()
        self._stacks = None

    def merge_day(self, day: int) -> None:
        """Merge a day's arrays into one (after a rebuild, which adds one array per batch)."""
        bucket = self._days.get(day)
        if bucket is not None and len(bucket.segments) > 1:
            bucket.segments = [_Segment.merge(bucket.segments)]

    def ids(self) -> Iterable[str]:
        for bucket in self._days.values():
            yield from bucket.pending_ids
            for seg in bucket.segments:
                yield from (seg.id(row) for row in range(seg.count))
