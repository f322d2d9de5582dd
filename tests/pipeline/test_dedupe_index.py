"""The compact band index (pipeline.dedupe_index, issue 15): datasketch's candidates, bytes per article, wide rows."""

from __future__ import annotations

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from pipeline.canonical import stable_id
from pipeline.dedupe_index import BandIndex

NUM_PERM = 128


def _random(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64)


def _edit(rng: np.random.Generator, base: np.ndarray, keep: float) -> np.ndarray:
    return np.where(rng.random(NUM_PERM) < keep, base, _random(rng))


def test_candidates_are_those_of_datasketch_minhashlsh() -> None:
    """Same band split, so the same candidates (the 32-bit band hash may only add rare extra ones)."""
    rng = np.random.default_rng(1)
    lsh = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
    index = BandIndex(lsh.b, lsh.r, chunk=64)  # small chunks: frozen, merged and pending rows all searched
    bases = [_random(rng) for _ in range(300)]
    sigs = {f"{i:024x}": s for i, s in enumerate(bases)}
    sigs.update({f"{i + 1000:024x}": _edit(rng, bases[i], rng.uniform(0.2, 0.95)) for i in range(300)})
    for n, (key, sig) in enumerate(sigs.items()):
        lsh.insert(key, LeanMinHash(seed=1, hashvalues=sig, scheme="affine32"))
        index.add(n % 3, key, index.keys(sig))
    index.close_days(2)  # days 0 and 1: one array and a Bloom filter each; day 2 stays open
    extra = 0
    for sig in [*sigs.values(), *(_edit(rng, bases[i], 0.6) for i in range(50))]:
        expected = set(lsh.query(LeanMinHash(seed=1, hashvalues=sig, scheme="affine32")))
        got = index.query(index.keys(sig))
        assert expected <= got
        extra += len(got - expected)
    assert extra <= 2


def test_index_costs_at_most_300_bytes_per_article() -> None:
    rng = np.random.default_rng(2)
    index = BandIndex(25, 5)
    n = 20_000
    ids = [stable_id(str(i)) for i in range(n)]
    index.add_many(0, ids, rng.integers(0, 2**32 - 1, (n, NUM_PERM), dtype=np.uint64))
    for i in range(n):  # and one by one, through the pending dict, frozen chunks and merges
        index.add(1, ids[i], index.keys(_random(rng)))
    index.close_days(2)
    assert len(index) == 2 * n
    assert index.nbytes() / (2 * n) <= 300
    # Ids round-trip through their 12-byte form.
    assert set(index.ids()) == set(ids)


def test_a_day_beyond_65536_articles_keeps_finding_every_row() -> None:
    # Rows are 16-bit up to 65,536 articles a day; merging past that widens them to 32 bits.
    rng = np.random.default_rng(5)
    index = BandIndex(25, 5)
    n = 40_000
    ids = [stable_id(f"wide-{i}") for i in range(2 * n)]
    sigs = rng.integers(0, 2**32 - 1, (2 * n, NUM_PERM), dtype=np.uint64)
    index.add_many(0, ids[:n], sigs[:n])
    index.add_many(0, ids[n:], sigs[n:])
    index.close_days(1)
    assert index.nbytes() <= 2 * n * (25 * 8 + 12) + 2 * n * 25 * 4  # 32-bit rows now, plus the filter
    for i in (0, n - 1, n, 2 * n - 1, 65_535, 65_536, 70_001):
        assert ids[i] in index.query(index.keys(sigs[i]))


def test_a_query_of_a_closed_day_copies_none_of_its_arrays() -> None:
    """A search in a closed day's sorted hashes must not convert them (numpy casts a uint32 array to int64 when
    the needle is a Python int: a copy of the whole day per probe, which made decisions ~10x slower)."""
    import tracemalloc

    rng = np.random.default_rng(3)
    index = BandIndex(25, 5)
    sigs = rng.integers(0, 2**32 - 1, (40_000, NUM_PERM), dtype=np.uint64)
    index.add_many(0, [f"{i:024x}" for i in range(len(sigs))], sigs)
    index.close_days(1)
    day_bytes = index.nbytes()
    keys = index.keys(sigs[123])
    index.query(index.keys(sigs[0]))  # the first query stacks the days' filters (once per day closed)
    tracemalloc.start()
    try:
        found = index.query(keys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{123:024x}" in found
    assert peak < day_bytes // 20, f"a query allocated {peak} bytes for a day of {day_bytes}"


def test_day_filters_hold_16_to_20_bits_per_band_and_miss_nothing() -> None:
    """A closed day's filter: every indexed band hash passes, about 0.5 % of others do, and its size is within
    a quarter above 16 bits per band hash (power-of-two sizes wasted up to half)."""
    from pipeline.dedupe_index import _bloom, _bloom_positions

    rng = np.random.default_rng(5)
    for n in (1_000, 33_333 * 25, 50_000 * 25):
        keys = rng.integers(0, 2**32, n, dtype=np.uint64)
        packed = _bloom(keys)
        nbits = packed.size * 8
        assert 16 * n <= nbits <= 20 * n + 64
        flags = np.unpackbits(packed, bitorder="little").astype(bool)
        assert flags[_bloom_positions(keys, nbits)].all()
        others = rng.integers(0, 2**32, 200_000, dtype=np.uint64)
        false_positive = flags[_bloom_positions(others, nbits)].all(axis=0).mean()
        assert false_positive < 0.01
