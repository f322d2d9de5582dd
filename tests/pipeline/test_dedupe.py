"""Dedupe decisions (pipeline.dedupe) on the seed page, its syndicated copy and an unrelated same-topic article.

Measured on the cleaned fixture bodies (5-word shingles): seed vs syndicated copy Jaccard 0.94 (MinHash estimate
0.95), seed vs unrelated 0.00. With the default threshold 0.5 the margin is ~0.45 on both sides; the harder
synthetic edit below (a third of the paragraphs edited, the last quarter dropped) still scores ~0.70.

At the end, on generated signatures: retention, compact signature records and the sliced rebuild (issue 15).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasketch import LeanMinHash

from pipeline.canonical import stable_id, text_fingerprint
from pipeline.clean import clean_article
from pipeline.dedupe import (
    Deduper,
    DedupeStore,
    MappingDedupeStore,
    SignatureRecord,
    UrlRecord,
    decide_article,
    minhash_signature,
)
from pipeline.errors import DedupeFailed
from pipeline.metrics import ARTICLES_DEDUPED
from pipeline.schemas import CleanArticle, RawItem, utcnow
from pipeline.settings import PipelineSettings, load_settings

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
SEED_URL = "https://www.rt.com/news/nato-signals-compromise/"
SYND_URL = "https://eurasiawire.example/world/nato-signals-readiness"
OTHER_URL = "https://news.example/abu-dhabi-talks-second-day"
P = PipelineSettings()  # the stage as configured by default


def _deduper(store: DedupeStore | None = None, *, num_perm: int = P.minhash_permutations, **options: Any) -> Deduper:
    """A Deduper with the default settings' threshold; ``options``: retention_days, clock, cleanup_batch."""
    return Deduper(MappingDedupeStore() if store is None else store, threshold=P.near_duplicate_threshold,
                   num_perm=num_perm, **options)


def _signature(text: str, num_perm: int = P.minhash_permutations) -> list[int]:
    return minhash_signature(text, num_perm=num_perm, shingle_size=P.shingle_size)


def _clean(page: str, link: str) -> CleanArticle:
    html = (PAGES / page).read_text(encoding="utf-8")
    return clean_article(RawItem(feed_url="https://feeds.example/rss", link=link, canonical_link=link,
                                 content=html, content_fetched=True), min_words=P.min_words)


@pytest.fixture(scope="module")
def seed() -> CleanArticle:
    return _clean("seed-rt.html", SEED_URL)


@pytest.fixture(scope="module")
def syndicated() -> CleanArticle:
    return _clean("seed-syndicated.html", SYND_URL)


@pytest.fixture(scope="module")
def unrelated() -> CleanArticle:
    return _clean("unrelated-same-topic.html", OTHER_URL)


def _with(article: CleanArticle, **changes: object) -> CleanArticle:
    data = article.model_dump()
    data.update(changes)
    if "body" in changes:
        data["text_fingerprint"] = text_fingerprint(str(changes["body"]))
    return CleanArticle(**data)


def _decide(deduper: Deduper, article: CleanArticle):
    return deduper.decide(article, _signature(article.body))


def _jaccard(a: str, b: str) -> float:
    def mh(text: str) -> LeanMinHash:
        return LeanMinHash(seed=1, hashvalues=_signature(text), scheme="affine32")

    return mh(a).jaccard(mh(b))


def test_fixture_margins_are_wide(seed, syndicated, unrelated):
    assert _jaccard(seed.body, syndicated.body) >= 0.85
    assert _jaccard(seed.body, unrelated.body) <= 0.1


def test_seed_is_new_story(seed):
    decision = _decide(_deduper(), seed)
    assert decision.action == "new"
    assert decision.article is not None
    assert decision.article.id == stable_id(seed.canonical_url)
    assert decision.article.story_id == decision.article.id
    assert decision.article.duplicate_of is None
    assert decision.article.version == 1


def test_syndicated_copy_joins_the_story_and_unrelated_does_not(seed, syndicated, unrelated):
    deduper = _deduper()
    first = _decide(deduper, seed).article
    copy = _decide(deduper, syndicated)
    assert copy.action == "near_duplicate"
    assert copy.article.story_id == first.story_id
    assert copy.article.duplicate_of == first.id
    assert copy.article.id != first.id
    assert copy.similarity is not None and copy.similarity >= 0.85
    other = _decide(deduper, unrelated)
    assert other.action == "new"
    assert other.article.story_id == other.article.id != first.story_id


def test_harder_edit_still_joins_the_story(seed):
    paragraphs = [p for p in seed.body.split("\n") if p.strip()]
    kept = paragraphs[: len(paragraphs) * 3 // 4]
    edited = [
        (p.replace("Rutte", "the NATO secretary general").replace("said", "told reporters") + " Analysts disagree.")
        if i % 3 == 0 else p
        for i, p in enumerate(kept)
    ]
    copy = _with(seed, body="\n".join(edited), canonical_url="https://third.example/nato-rutte-kiev",
                 title="Rutte in Kiev: NATO ready to compromise")
    sim = _jaccard(seed.body, copy.body)
    assert 0.5 <= sim < 0.9, sim
    deduper = _deduper()
    first = _decide(deduper, seed).article
    decision = _decide(deduper, copy)
    assert decision.action == "near_duplicate"
    assert decision.article.story_id == first.id


def test_replay_is_a_duplicate_with_the_same_ids(seed, syndicated):
    deduper = _deduper()
    first = _decide(deduper, seed).article
    copy = _decide(deduper, syndicated).article
    for original in (first, copy):
        again = _decide(deduper, CleanArticle(**original.model_dump()))
        assert again.action == "duplicate"
        assert again.article is None
        assert again.existing is not None
        assert (again.existing.id, again.existing.story_id, again.existing.duplicate_of, again.existing.version) == (
            original.id, original.story_id, original.duplicate_of, original.version)


def test_same_text_at_another_url_is_one_article(seed):
    deduper = _deduper()
    _decide(deduper, seed)
    # Same text via another feed under another URL (differs only in spacing/case: same fingerprint).
    mirror = _with(seed, canonical_url="https://mirror.example/story/123", url="https://mirror.example/story/123")
    decision = _decide(deduper, mirror)
    assert decision.action == "duplicate"
    assert decision.article is None and decision.existing is None


class _Offload:
    """Runs the pool's calls inline and records them."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(fn)
        return fn(*args, **kwargs)


def _decisions(action: str) -> float:
    return ARTICLES_DEDUPED.labels(action)._value.get()


async def test_decide_article_signs_only_when_the_signature_is_missing_and_refreshes_a_stale_index(seed):
    deduper, offload = _deduper(), _Offload()
    new_before, duplicate_before = _decisions("new"), _decisions("duplicate")
    first = await decide_article(deduper, seed, _signature(seed.body), offload, shingle_size=P.shingle_size)
    assert first is not None and first.version == 1 and first.story_id == first.id
    assert offload.calls == [] and not deduper.stale  # the header's signature used; the index built first

    # No signature (header missing): computed in the pool; a replay re-emits the article as first decided.
    deduper.mark_stale()
    again = await decide_article(deduper, seed, None, offload, shingle_size=P.shingle_size)
    assert offload.calls == [minhash_signature] and not deduper.stale
    assert again == first
    # The same text at another URL: counted, nothing to send.
    mirror = _with(seed, canonical_url="https://mirror.example/story/123", url="https://mirror.example/story/123")
    assert await decide_article(deduper, mirror, _signature(mirror.body), offload, shingle_size=P.shingle_size) is None
    assert (_decisions("new") - new_before, _decisions("duplicate") - duplicate_before) == (1, 2)


def test_correction_updates_the_article(seed, syndicated):
    deduper = _deduper()
    first = _decide(deduper, seed).article
    copy = _decide(deduper, syndicated).article
    note = "\nCorrection: an earlier version misstated a figure."
    corrected = _with(seed, body=seed.body.replace("90%", "85%") + note)
    update = _decide(deduper, corrected)
    assert update.action == "update"
    assert update.article.id == first.id
    assert update.article.version == 2
    assert update.article.story_id == first.story_id
    assert update.article.duplicate_of is None
    # Replays after the correction: the correction is a duplicate (same ids, version 2) ...
    again = _decide(deduper, corrected)
    assert again.action == "duplicate" and again.existing.version == 2
    # ... and the old version is a duplicate too, not offered for re-emission (it must not undo the correction).
    old = _decide(deduper, seed)
    assert old.action == "duplicate" and old.existing is None
    # A second correction: version 3. The syndicated copy keeps its story.
    update3 = _decide(deduper, _with(seed, body=corrected.body + "\nUpdated at 18:00."))
    assert (update3.action, update3.article.version) == ("update", 3)
    assert copy.story_id == first.story_id


def test_decisions_survive_a_restart(seed, syndicated, unrelated):
    store = MappingDedupeStore()
    before = _deduper(store)
    first = _decide(before, seed).article
    other = _decide(before, unrelated).article
    # "Restart": a new Deduper over the same (changelog-restored) store; the LSH index is rebuilt from it.
    after = _deduper(store)
    after.rebuild()
    copy = _decide(after, syndicated)
    assert copy.action == "near_duplicate"
    assert copy.article.story_id == first.id
    replay = _decide(after, unrelated)
    assert replay.action == "duplicate" and replay.existing.id == other.id
    # Without rebuild() the index is empty: the near-duplicate would be missed (why the agent must call it).
    cold = _deduper(store)
    fresh = _with(syndicated, canonical_url="https://fourth.example/nato", body=syndicated.body + " Extra line.")
    assert _decide(cold, fresh).action == "new"


def test_replay_after_a_crash_between_table_writes(seed):
    class CrashingStore(MappingDedupeStore):
        crash = True

        def put_url(self, canonical_url: str, record: UrlRecord) -> None:
            if self.crash:
                self.crash = False
                raise RuntimeError("killed")
            super().put_url(canonical_url, record)

    store = CrashingStore()
    with pytest.raises(RuntimeError):
        _decide(_deduper(store), seed)
    deduper = _deduper(store)
    deduper.rebuild()
    decision = _decide(deduper, seed)
    assert decision.action == "duplicate"
    assert decision.existing is not None
    assert decision.existing.id == decision.existing.story_id == stable_id(seed.canonical_url)


def test_article_without_url_uses_its_fingerprint(seed):
    deduper = _deduper()
    no_url = _with(seed, canonical_url=None, url=None)
    first = _decide(deduper, no_url)
    assert first.action == "new"
    assert first.article.id == stable_id(seed.text_fingerprint)
    again = _decide(deduper, no_url)
    assert again.action == "duplicate" and again.existing.id == first.article.id


def test_empty_text_never_matches():
    deduper = _deduper()
    now = datetime.now(UTC)
    a = CleanArticle(feed_url="f", title="a", body="", ingested_at=now, text_fingerprint=text_fingerprint(""),
                     canonical_url="https://a.example/1")
    b = CleanArticle(feed_url="f", title="b", body="...", ingested_at=now, text_fingerprint="other",
                     canonical_url="https://b.example/2")
    assert _decide(deduper, a).action == "new"
    assert _decide(deduper, b).action == "new"


def test_wrong_signature_length_is_a_typed_error(seed):
    with pytest.raises(DedupeFailed):
        _deduper(num_perm=128).decide(seed, _signature(seed.body, num_perm=64))


@pytest.mark.parametrize("threshold", [0, 1.5])
def test_threshold_is_validated(threshold):
    with pytest.raises(ValueError):
        Deduper(MappingDedupeStore(), threshold=threshold, num_perm=P.minhash_permutations)


def test_signature_is_deterministic_and_sized():
    text = "NATO Secretary-General Mark Rutte arrived in Kiev on Tuesday and addressed the parliament."
    assert _signature(text) == _signature(text.upper() + "  ")
    assert len(_signature(text, num_perm=64)) == 64
    assert len(_signature("two words")) == P.minhash_permutations


# Dedupe state that scales (issue 15): retention, compact records, sliced rebuild. The band index itself is
# tested in test_dedupe_index.py.

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
    first = _deduper(store, num_perm=NUM_PERM, retention_days=30, clock=clock)
    bases = [_random(rng) for _ in range(50)]
    for n, sig in enumerate(bases):
        clock.now += DAY / 10  # five days of articles
        assert first.decide(_article(n), sig.tolist()).action == "new"
    # Older records (a JSON list, no day) are read too.
    store.signature_table["legacy"] = {"story_id": "legacy", "signature": bases[0].tolist()}
    restarted = _deduper(store, num_perm=NUM_PERM, retention_days=30, clock=clock)
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
    first = _deduper(store, num_perm=NUM_PERM)
    base = _random(rng)
    assert first.decide(_article(1), base.tolist()).action == "new"
    deduper = _deduper(store, num_perm=NUM_PERM)
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
    deduper = _deduper(store, num_perm=NUM_PERM, retention_days=2, clock=clock, cleanup_batch=3)
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
    deduper = _deduper(store, num_perm=NUM_PERM, retention_days=1, clock=clock)
    deduper.decide(_article(1), _random(rng).tolist())
    clock.now += 5 * DAY
    # Another process (a worker that never held article 1 in its index) decides article 2.
    _deduper(store, num_perm=NUM_PERM, retention_days=1, clock=clock).decide(_article(2), _random(rng).tolist())
    restarted = _deduper(store, num_perm=NUM_PERM, retention_days=1, clock=clock)
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
        _deduper(num_perm=NUM_PERM, retention_days=0)
