"""Dedupe state that scales (issue 15): the compact band index, retention, compact records, sliced rebuild."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHashLSH

from pipeline.canonical import stable_id, text_fingerprint
from pipeline.dedupe import Deduper, MappingDedupeStore, SignatureRecord
from pipeline.dedupe_index import BandIndex
from pipeline.schemas import CleanArticle, utcnow
from pipeline.settings import load_settings

DAY = 86400.0
NUM_PERM = 128


def _random(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2**32 - 1, NUM_PERM, dtype=np.uint64)


def _edit(rng: np.random.Generator, base: np.ndarray, keep: float) -> np.ndarray:
    return np.where(rng.random(NUM_PERM) < keep, base, _random(rng))


def _article(n: int, url: str | None = None) -> CleanArticle:
    url = url or f"https://state.example/{n}"
    body = f"body {n}"
    return CleanArticle(url=url, canonical_url=url, feed_url="https://state.example/rss", title=f"t{n}", body=body,
                        ingested_at=utcnow(), text_fingerprint=text_fingerprint(body))


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


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


def test_signature_record_is_compact_json_and_reads_older_lists() -> None:
    sig = list(range(1000, 1000 + NUM_PERM))
    record = SignatureRecord(story_id="s", signature=sig, day=3)
    data = record.model_dump(mode="json")
    assert isinstance(data["signature"], str) and len(data["signature"]) == 8 * NUM_PERM
    assert SignatureRecord.model_validate(data).signature == sig
    assert SignatureRecord.model_validate({**data, "signature": sig}).signature == sig  # as older records hold
    with pytest.raises(ValueError):
        SignatureRecord.model_validate({**data, "signature": "not hex"})


def test_rebuild_in_slices_gives_the_same_decisions() -> None:
    rng = np.random.default_rng(3)
    clock = Clock()
    store = MappingDedupeStore()
    first = Deduper(store, retention_days=30, clock=clock)
    bases = [_random(rng) for _ in range(50)]
    for n, sig in enumerate(bases):
        clock.now += DAY / 10  # five days of articles
        assert first.decide(_article(n), sig.tolist()).action == "new"
    # Older records (a JSON list, no day) are read too.
    store.signature_table["legacy"] = {"story_id": "legacy", "signature": bases[0].tolist()}
    restarted = Deduper(store, retention_days=30, clock=clock)
    slices = list(restarted.rebuild_steps(batch=7))
    assert len(slices) == 8 + 6 and slices[-1] == 51  # 8 batches of records, then one step per day
    assert len(restarted.index) == 51
    assert len(restarted.index.days) == 6  # five days, and today for the legacy record
    copy = restarted.decide(_article(999), _edit(rng, bases[17], 0.9).tolist())
    assert copy.action == "near_duplicate"
    assert copy.article is not None and copy.article.story_id == stable_id("https://state.example/17")


def test_refresh_rebuilds_only_when_stale_and_a_change_during_a_rebuild_is_not_lost() -> None:
    rng = np.random.default_rng(5)
    store = MappingDedupeStore()
    first = Deduper(store)
    base = _random(rng)
    assert first.decide(_article(1), base.tolist()).action == "new"
    deduper = Deduper(store)
    assert deduper.stale  # an index starts empty
    assert list(deduper.refresh_steps()) and not deduper.stale
    assert list(deduper.refresh_steps()) == []  # fresh: no work before the next decision
    assert deduper.decide(_article(2), _edit(rng, base, 0.9).tolist()).action == "near_duplicate"

    # A change marked during a rebuild: that rebuild may have read the store before it, so another is due.
    deduper.mark_stale()
    steps = deduper.refresh_steps()
    next(steps)
    deduper.mark_stale()
    list(steps)
    assert deduper.stale
    # A rebuild abandoned half-way (a failure, a cancelled agent) leaves the index stale: retried next time.
    steps = deduper.refresh_steps()
    next(steps)
    steps.close()
    assert deduper.stale
    assert list(deduper.refresh_steps()) and not deduper.stale
    assert len(deduper.index) == 2


def test_retention_expires_index_and_tables_in_slices() -> None:
    rng = np.random.default_rng(4)
    clock = Clock()
    store = MappingDedupeStore()
    deduper = Deduper(store, retention_days=2, clock=clock, cleanup_batch=3)
    old = [_random(rng) for _ in range(10)]
    for n, sig in enumerate(old):
        deduper.decide(_article(n), sig.tolist())
    # A correction of article 0 a day later: it lives on under the newer day.
    clock.now += DAY
    corrected = _edit(rng, old[0], 0.95)
    update = deduper.decide(_article(0).model_copy(update={"text_fingerprint": "v2"}), corrected.tolist())
    assert update.action == "update"
    # Inside the window (two whole days after the first day): still remembered.
    clock.now += DAY
    assert deduper.decide(_article(100), _edit(rng, old[5], 0.9).tolist()).action == "near_duplicate"
    assert len(store.signature_table) == 11

    # One more day: the first day expires. The index forgets it at once ...
    clock.now += DAY
    copy = deduper.decide(_article(101), _edit(rng, old[6], 0.9).tolist())
    assert copy.action == "new"
    # ... the tables in slices of cleanup_batch per decision (3 already done by that decision).
    assert deduper.expiring == 10 - 3
    deduper.decide(_article(102), _random(rng).tolist())
    assert deduper.expiring == 10 - 6
    assert deduper.expire() == 4 and deduper.expiring == 0
    gone = [stable_id(f"https://state.example/{n}") for n in range(1, 10)]
    assert not any(g in store.signature_table for g in gone)
    assert not any(f"https://state.example/{n}" in store.urls for n in range(1, 10))
    assert not any(text_fingerprint(f"body {n}") in store.fingerprints for n in range(1, 10))
    # The corrected article was decided again on a later day: kept, with both fingerprints.
    kept = stable_id("https://state.example/0")
    assert kept in store.signature_table and "https://state.example/0" in store.urls
    assert store.fingerprints["v2"] == kept
    assert store.fingerprints[text_fingerprint("body 0")] == kept
    # An expired article sent again is new (same id: it derives from the URL).
    again = deduper.decide(_article(3), old[3].tolist())
    assert again.action == "new" and again.article is not None
    assert again.article.id == stable_id("https://state.example/3")

    # Later the correction expires too, with every fingerprint it had.
    clock.now += 3 * DAY
    deduper.decide(_article(103), _random(rng).tolist())
    deduper.expire()
    assert kept not in store.signature_table and "https://state.example/0" not in store.urls
    assert "v2" not in store.fingerprints and text_fingerprint("body 0") not in store.fingerprints


def test_rebuild_leaves_expired_records_out_and_deletes_them() -> None:
    rng = np.random.default_rng(5)
    clock = Clock()
    store = MappingDedupeStore()
    deduper = Deduper(store, retention_days=1, clock=clock)
    deduper.decide(_article(1), _random(rng).tolist())
    clock.now += 5 * DAY
    # Another process (a worker that never held article 1 in its index) decides article 2.
    Deduper(store, retention_days=1, clock=clock).decide(_article(2), _random(rng).tolist())
    restarted = Deduper(store, retention_days=1, clock=clock)
    restarted.rebuild()
    assert len(restarted.index) == 1 and restarted.expiring == 1
    restarted.expire()
    assert list(store.signature_table) == [stable_id("https://state.example/2")]


def test_retention_setting_defaults_to_30_days_and_is_validated() -> None:
    assert load_settings(environ={}).pipeline.dedupe_retention_days == 30
    assert load_settings(environ={"NEWSFLOW_PIPELINE_DEDUPE_RETENTION_DAYS": "7"}).pipeline.dedupe_retention_days == 7
    with pytest.raises(Exception, match="dedupe_retention_days"):
        load_settings(environ={"NEWSFLOW_PIPELINE_DEDUPE_RETENTION_DAYS": "0"})
    with pytest.raises(ValueError):
        Deduper(MappingDedupeStore(), retention_days=0)


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
