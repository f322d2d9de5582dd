"""The agents and their building blocks without a broker: table-backed store, offload, the pool-side adapters, and
the agents themselves over a fake app (stage_guard and dead letters: test_dlq.py; the signature header:
test_schemas.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.dedupe import Deduper, MappingDedupeStore, SignatureRecord, UrlRecord, minhash_signature
from pipeline.errors import ArticleDiscarded, OffloadedError
from pipeline.offload import Offload
from pipeline.schemas import (
    SIGNATURE_HEADER,
    CleanArticle,
    DeadLetter,
    DedupedArticle,
    EnrichedArticle,
    RawItem,
    decode_signature,
    utcnow,
)


def _signature(text: str) -> list[int]:
    """This test's signature parameters: 64 permutations (to match its deduper), shingles of 5 words."""
    return minhash_signature(text, num_perm=64, shingle_size=5)


def _article(url: str, body: str) -> CleanArticle:
    from pipeline.canonical import text_fingerprint

    return CleanArticle(url=url, canonical_url=url, feed_url="https://f.example/rss", title="t", body=body,
                        ingested_at=utcnow(), text_fingerprint=text_fingerprint(body))


def test_faust_store_keeps_json_dicts_and_backs_the_deduper() -> None:
    # Faust tables are mutable mappings holding what the changelog holds: plain JSON values.
    urls: dict = {}
    fingerprints: dict = {}
    signatures: dict = {}
    store = MappingDedupeStore(urls, fingerprints, signatures)
    store.put_url("https://a.example/1", UrlRecord(id="i1", fingerprint="f1", story_id="i1"))
    store.put_signature("i1", SignatureRecord(story_id="i1", signature=[1, 2, 3]))
    assert urls["https://a.example/1"] == {"id": "i1", "fingerprint": "f1", "version": 1, "story_id": "i1",
                                           "duplicate_of": None}
    assert store.get_url("https://a.example/1") == UrlRecord(id="i1", fingerprint="f1", story_id="i1")
    assert store.get_url("https://nowhere.example/") is None
    assert [k for k, _ in store.signatures()] == ["i1"]

    # The same decisions as over the dedupe module's own store, including after a rebuild (a restart).
    body = " ".join(f"word{i} sentence about the alliance and the talks" for i in range(40))
    deduper = Deduper(MappingDedupeStore({}, {}, {}), threshold=0.5, num_perm=64)
    first = deduper.decide(_article("https://a.example/x", body), _signature(body))
    restarted = Deduper(deduper.store, threshold=0.5, num_perm=64)
    restarted.rebuild()
    copy_body = body + " A closing line added by the second outlet."
    copy = restarted.decide(_article("https://b.example/y", copy_body), _signature(copy_body))
    assert first.action == "new" and copy.action == "near_duplicate"
    assert copy.article is not None and first.article is not None
    assert copy.article.story_id == first.article.id
    replay = restarted.decide(_article("https://a.example/x", body), _signature(body))
    assert replay.action == "duplicate" and replay.existing is not None and replay.existing.id == first.article.id


def _fails(reason: str) -> None:
    raise ArticleDiscarded(reason, stage="clean")


@pytest.mark.parametrize("processes", [0, 1], ids=["thread", "process"])
async def test_offload_runs_off_loop_and_carries_errors_back(processes: int) -> None:
    offload = Offload(processes)
    try:
        assert await offload.run(minhash_signature, "a b c d e f", num_perm=16, shingle_size=3) == minhash_signature(
            "a b c d e f", num_perm=16, shingle_size=3)
        with pytest.raises(OffloadedError) as info:
            await offload.run(_fails, "too short")
        assert info.value.kind == "discarded" and "too short" in str(info.value)
    finally:
        offload.shutdown()


def test_pool_adapters_return_what_the_agents_send_without_parsing() -> None:
    # The agents send these as they are: the key or id beside the JSON, so nothing is parsed twice.
    from pipeline.clean import clean_and_sign
    from pipeline.enrich import enrich_batch

    body = " ".join(f"Sentence {n} of the story says the talks in Abu Dhabi went on late." for n in range(8))
    item = RawItem(feed_url="https://f.example/rss", link="https://a.example/news/1?utm_source=x", title="Talks",
                   content=f"<p>{body}</p>")
    signed = clean_and_sign(item, min_words=20, num_perm=64, shingle_size=5)
    article = CleanArticle.model_validate_json(signed.value)
    assert signed.key == article.key == "https://a.example/news/1"
    assert decode_signature(signed.signature, 64, 5) == _signature(article.body)

    deduper = Deduper(MappingDedupeStore(), threshold=0.5, num_perm=64)
    deduped = deduper.decide(article, _signature(article.body)).article
    assert deduped is not None
    [(article_id, value)] = enrich_batch([deduped], batch_size=1)
    assert article_id == deduped.id == EnrichedArticle.model_validate_json(value).id


# The agents themselves over a fake app and streams (no broker): what is sent where, what is dead-lettered.


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes, dict[str, bytes] | None]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None) -> Any:
        self.sent.append((key, value, headers))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Signal:
    def __init__(self) -> None:
        self.receivers: list[Any] = []

    def connect(self, fn: Any) -> Any:
        self.receivers.append(fn)
        return fn


class _Producer:
    async def flush(self) -> None:
        pass


class _App:
    def __init__(self) -> None:
        self.raw_topic, self.clean_topic, self.deduped_topic = _Topic(), _Topic(), _Topic()
        self.enriched_topic, self.dlq_topic = _Topic(), _Topic()
        self.url_table: dict = {}
        self.fingerprint_table: dict = {}
        self.signature_table: dict = {}
        self.on_rebalance_complete = _Signal()
        self.producer = _Producer()

    def letters(self) -> list[tuple[str, str]]:
        return [(d.stage, d.kind) for d in (DeadLetter.model_validate_json(v) for _, v, _ in self.dlq_topic.sent)]


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    refcount: int = 1
    acked: bool = False

    def incref(self) -> None:
        self.refcount += 1


@dataclass
class _Event:
    value: bytes
    headers: dict[str, bytes] | None
    message: _Message

    def ack(self) -> None:  # as Faust's Message.ack: the last reference released acks
        self.message.refcount -= 1
        self.message.acked = self.message.refcount == 0


class _Stream:
    """Faust's stream as the agents see it, acks included: each event is acked in a ``finally`` when the agent
    moves on, also when the agent was interrupted (faust-streaming 0.15.3 does exactly that)."""

    def __init__(self, sent: list[tuple[bytes | None, bytes, dict[str, bytes] | None]] | list[bytes]) -> None:
        self.items = [s if isinstance(s, tuple) else (None, s, None) for s in sent]
        self.delivered: list[_Event] = []
        self.iterators: list[Any] = []

    async def stop(self) -> None:
        """Close the iterators handed out, as Faust's ``Stream.on_stop`` does: their ``finally`` blocks run."""
        for it in self.iterators:
            await it.aclose()

    def _events(self) -> list[_Event]:
        self.delivered = [_Event(v, h, _Message("t", 0, n, k, v)) for n, (k, v, h) in enumerate(self.items)]
        return self.delivered

    def acked(self) -> list[int]:
        return [e.message.offset for e in self.delivered if e.message.acked]

    def events(self) -> AsyncIterator[_Event]:
        async def it() -> AsyncIterator[_Event]:
            for event in self._events():
                try:
                    yield event
                finally:
                    event.ack()

        self.iterators.append(it())
        return self.iterators[-1]

    def take_events(self, n: int, within: float) -> AsyncIterator[list[_Event]]:
        async def it() -> AsyncIterator[list[_Event]]:
            events = self._events()
            for i in range(0, len(events), n):
                try:
                    yield events[i : i + n]
                finally:
                    for event in events[i : i + n]:
                        event.ack()

        self.iterators.append(it())
        return self.iterators[-1]


def _pipeline_settings(**update: Any) -> Any:
    from pipeline.settings import load_settings

    settings = load_settings()
    p = settings.pipeline.model_copy(update={"min_words": 20, **update})
    return settings.model_copy(update={"pipeline": p})


def _raw(n: int) -> bytes:
    body = " ".join(f"Sentence {i} of story {n} says the talks in Abu Dhabi went on until late." for i in range(8))
    return RawItem(feed_url="https://f.example/rss", link=f"https://a.example/news/{n}", title=f"Talks {n}",
                   content=f"<p>{body}</p>").model_dump_json().encode()


def _enrich_failing_on_boom(articles: list[Any], **options: Any) -> list[tuple[str, str]]:
    from pipeline.errors import EnrichFailed

    if any(a.title == "boom" for a in articles):
        raise EnrichFailed("spaCy failed on the batch", stage="enrich")
    return [(a.id, a.model_dump_json()) for a in articles]


async def test_agents_send_along_the_path_and_dead_letter_bad_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.enrich
    from pipeline import agents

    settings = _pipeline_settings(nlp_batch_size=8)
    p = settings.pipeline
    app = _App()
    offload = Offload(0)

    async def dead_letter(letter: DeadLetter) -> None:
        await app.dlq_topic.send(key=None, value=letter.model_dump_json().encode())

    try:
        # clean: a good item, bad JSON and a too-short item.
        short = RawItem(feed_url="https://f.example/rss", link="https://a.example/s", content="<p>Too short.</p>")
        raw = [_raw(1), b"{not json", short.model_dump_json().encode(), _raw(2)]
        stream = _Stream(raw)
        await agents.clean_agent(app, p, offload, dead_letter)(stream)
        assert stream.acked() == [0, 1, 2, 3]  # sent on or dead-lettered: done
        assert [k for k, _, _ in app.clean_topic.sent] == [b"https://a.example/news/1", b"https://a.example/news/2"]
        assert all(h is not None and SIGNATURE_HEADER in h for _, _, h in app.clean_topic.sent)
        assert app.letters() == [("clean", "invalid_message"), ("clean", "discarded")]

        # dedupe: with the header, without it (recomputed), a replay and bad JSON; stale again after a rebalance.
        key, value, _ = app.clean_topic.sent[1]
        await agents.dedupe_agent(app, p, offload, dead_letter)(
            _Stream([app.clean_topic.sent[0], (key, value, None), app.clean_topic.sent[0], (None, b"[]", None)]))
        ids = [k for k, _, _ in app.deduped_topic.sent]
        assert len(ids) == 3 and ids[0] == ids[2] != ids[1]  # the replay re-emits the same id
        assert app.letters()[2:] == [("dedupe", "invalid_message")]
        [mark_stale] = app.on_rebalance_complete.receivers
        await mark_stale(app, signal=None)

        # enrich: one batch of the two articles, bad JSON and one the pool fails on: only that one is dead-lettered.
        good = [v for _, v, _ in app.deduped_topic.sent[:2]]
        boom = DedupedArticle.model_validate_json(good[0]).model_copy(update={"title": "boom", "id": "boom"})
        monkeypatch.setattr(pipeline.enrich, "enrich_batch", _enrich_failing_on_boom)
        stream = _Stream([good[0], b"{}", boom.model_dump_json().encode(), good[1]])
        await agents.enrich_agent(app, settings, offload, dead_letter)(stream)
        assert stream.acked() == [0, 1, 2, 3]
        assert [k for k, _, _ in app.enriched_topic.sent] == [k for k, _, _ in app.deduped_topic.sent[:2]]
        assert app.letters()[3:] == [("enrich", "invalid_message"), ("enrich", "enrich_failed")]
    finally:
        offload.shutdown()


@pytest.mark.parametrize("processes", [0, 1], ids=["thread", "process"])
async def test_the_clean_agent_counts_flattened_html_in_the_worker(processes: int) -> None:
    # The flattening happens in a pool process, whose metrics no /metrics serves: it comes back with the article.
    from prometheus_client import REGISTRY

    from pipeline import agents

    app, offload = _App(), Offload(processes)
    body = " ".join(f"Sentence {i} of the deep story says the talks in Abu Dhabi went on until late." for i in range(8))
    deep = RawItem(feed_url="https://f.example/rss", link="https://a.example/news/deep", title="Deep",
                   content="<div>" * 10_000 + f"<p>{body}</p>" + "</div>" * 10_000)

    async def dead_letter(letter: DeadLetter) -> None:
        await app.dlq_topic.send(key=None, value=letter.model_dump_json().encode())

    before = REGISTRY.get_sample_value("newsflow_clean_html_flattened_total") or 0.0
    try:
        stream = _Stream([_raw(1), deep.model_dump_json().encode(), _raw(2)])
        await agents.clean_agent(app, _pipeline_settings().pipeline, offload, dead_letter)(stream)
    finally:
        offload.shutdown()
    assert [k for k, _, _ in app.clean_topic.sent] == [b"https://a.example/news/1", b"https://a.example/news/deep",
                                                       b"https://a.example/news/2"]
    assert REGISTRY.get_sample_value("newsflow_clean_html_flattened_total") == before + 1


@pytest.mark.parametrize("agent", ["clean", "enrich"])
async def test_an_agent_cancelled_half_way_acks_nothing_it_did_not_finish(agent: str) -> None:
    """A worker stopping (SIGTERM) cancels its agents; Faust's stream then acks the event being processed in its
    ``finally``, and the consumer commits it: the article was lost. The agents hold their events (pipeline/acks.py)."""
    from pipeline import agents

    settings = _pipeline_settings(nlp_batch_size=2, nlp_batch_timeout_s=0.01)
    app = _App()
    started = asyncio.Event()

    class _Stuck(Offload):
        async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
            started.set()
            await asyncio.sleep(3600)  # the pool call in flight when the worker stops

    async def dead_letter(letter: DeadLetter) -> None:
        raise AssertionError(f"nothing is dead-lettered: {letter}")

    offload = _Stuck(0)
    try:
        if agent == "clean":
            stream = _Stream([_raw(1)])
            body = agents.clean_agent(app, settings.pipeline, offload, dead_letter)(stream)
        else:
            article = DedupedArticle(url="https://a.example/1", feed_url="https://f.example/rss", title="T",
                                     body="Talks went on. " * 20, ingested_at=datetime.now(UTC),
                                     text_fingerprint="f", id="1", story_id="1")
            stream = _Stream([article.model_dump_json().encode()])
            body = agents.enrich_agent(app, settings, offload, dead_letter)(stream)
        task = asyncio.ensure_future(body)
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await stream.stop()
        assert stream.delivered and stream.acked() == []  # Faust's finally ran, yet the message is not acked
        assert stream.delivered[0].message.refcount == 1  # the hold stays: the offset is never committable
    finally:
        offload.shutdown()

