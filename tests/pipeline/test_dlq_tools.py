"""pipeline.dlq_tools: dead letters read from news.dlq records, filtered, and which of them replay may put back.

Records here are kafka-python ``ConsumerRecord`` values built in the test; reading news.dlq from a broker and
replaying are integration tests (tests/integration/test_ops_dlq.py).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from pipeline import dlq_tools
from pipeline.dlq_tools import DlqEntry, replay_key
from pipeline.schemas import DeadLetter

T = datetime(2026, 2, 4, 12, 0, tzinfo=UTC)


def _letter(**kw: Any) -> DeadLetter:
    fields: dict[str, Any] = {"stage": "clean", "kind": "clean_failed", "error": "lxml gave up", "topic": "news.raw",
                              "partition": 1, "offset": 17, "key": "k1", "payload": '{"a": 1}', "failed_at": T}
    return DeadLetter(**{**fields, **kw})


def _record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord("news.dlq", 0, None, offset, int(T.timestamp() * 1000), 0, None, value, [], None, -1,
                          len(value), -1)


def test_a_record_is_read_as_its_letter_or_as_unreadable() -> None:
    letter = _letter()
    entry = dlq_tools._entry(_record(5, letter.model_dump_json().encode()), replayed={replay_key(0, 5)})
    assert (entry.partition, entry.offset, entry.timestamp, entry.letter, entry.replayed) == (0, 5, T, letter, True)
    bad = dlq_tools._entry(_record(6, b"not json"), replayed=set())
    assert bad.letter is None and bad.unreadable and not bad.replayed
    assert bad.key == "0:6"


def test_as_dict_names_the_letters_place_and_hides_the_payload_unless_asked() -> None:
    entry = DlqEntry(0, 5, T, _letter(payload_base64=base64.b64encode(b'{"a": 1}').decode()))
    brief = entry.as_dict()
    assert (brief["dlq_partition"], brief["dlq_offset"], brief["offset"]) == (0, 5, 17)
    assert "payload" not in brief and "payload_base64" not in brief and brief["payload_chars"] == 8
    assert entry.as_dict(payload=True)["payload"] == '{"a": 1}'
    assert DlqEntry(0, 6, T, None, "bad json").as_dict() == {
        "dlq_partition": 0, "dlq_offset": 6, "timestamp": T.isoformat(), "replayed": False, "unreadable": "bad json"}


def test_filters_by_stage_and_kind() -> None:
    entry = DlqEntry(0, 5, T, _letter())
    assert dlq_tools._matches(entry, None, None) and dlq_tools._matches(entry, "clean", "clean_failed")
    assert not dlq_tools._matches(entry, "sink", None) and not dlq_tools._matches(entry, None, "discarded")
    unreadable = DlqEntry(0, 6, T, None, "bad json")
    assert dlq_tools._matches(unreadable, None, None) and not dlq_tools._matches(unreadable, "clean", None)


def test_what_replay_leaves_and_why() -> None:
    def why(entry: DlqEntry, kind: str | None = None) -> str | None:
        return dlq_tools._why_not(entry, kind)

    assert why(DlqEntry(0, 1, T, _letter())) is None
    assert why(DlqEntry(0, 2, T, None, "bad json")) == "unreadable letter: bad json"
    assert why(DlqEntry(0, 3, T, _letter(), replayed=True)) == "already replayed"
    assert why(DlqEntry(0, 4, T, _letter(topic=None))) == "the letter does not name its source topic"
    assert "truncated" in (why(DlqEntry(0, 5, T, _letter(payload_truncated=True))) or "")
    discarded = DlqEntry(0, 6, T, _letter(kind="discarded"))
    assert "--kind discarded" in (why(discarded) or "") and why(discarded, "discarded") is None
