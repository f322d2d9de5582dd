"""The sink in a real Faust worker on the real broker and Elasticsearch: replay is idempotent, rejects go to the DLQ.

The worker (testkit/sink_worker.py) is a minimal ``faust.App`` (its own app id, topic prefix and index prefix) whose
one agent calls :func:`pipeline.sink.index_stream`, run in a child process as ``faust.Worker`` runs in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.index import make_client
from pipeline.settings import Settings
from testkit.sink_worker import SinkRig, make_article, make_rig

pytestmark = pytest.mark.integration


@pytest.fixture()
def rig(stack: Settings, unique: str, tmp_path: Path) -> Iterator[SinkRig]:
    r = make_rig(stack, unique, tmp_path)
    r.create_topics()
    yield r
    r.cleanup()


def test_replay_is_idempotent_and_rejects_go_to_dlq(rig: SinkRig) -> None:
    articles = [make_article(n) for n in range(40)]
    good = [(a.id, a.model_dump_json().encode()) for a in articles]
    # Pydantic accepts it, Elasticsearch cannot: word_count is mapped as integer (max 2^31-1).
    breaking = make_article(999, word_count=10**12)
    bad = [(breaking.id, breaking.model_dump_json().encode()), ("garbage", b"{not json")]
    rig.produce(good[:20] + bad + good[20:])
    rig.start_worker()

    rig.wait_for("40 documents and all offsets committed", lambda: rig.count() == 40 and rig.committed_all())
    letters = rig.dead_letters(2)
    assert sorted(letter.kind for letter in letters) == ["document_rejected", "invalid_message"]
    assert all(letter.stage == "sink" and letter.topic == rig.enriched for letter in letters)
    rejected = next(letter for letter in letters if letter.kind == "document_rejected")
    assert "word_count" in rejected.error and json.loads(rejected.payload)["id"] == "doc0999"

    # Replay: the same messages again (as after a consumer-group reset), plus a correction of one article.
    correction = make_article(3, title="Article 3 corrected", version=2)
    rig.produce([*good, (correction.id, correction.model_dump_json().encode())])
    rig.wait_for("the replay to be committed", rig.committed_all)
    assert rig.count() == 40
    es: Elasticsearch = make_client(rig.settings.es)
    try:
        hits = es.search(index=rig.settings.es.alias, query={"ids": {"values": ["doc0003"]}})["hits"]["hits"]
        assert len(hits) == 1 and hits[0]["_source"]["title"] == "Article 3 corrected"
        assert hits[0]["_source"]["version"] == 2 and hits[0]["_source"]["indexed_at"]
    finally:
        es.close()
    assert len(rig.dead_letters(2)) == 2  # the replay's rejects are not re-sent: the garbage/breaking were not replayed
