"""pipeline.dlq without a broker: stage_guard, the one dead-letter path (dead_letter), and the letters' bounds."""

from __future__ import annotations

import random

import pytest

from pipeline.dlq import Origin, Retry, dead_letter, stage_guard
from pipeline.errors import ArticleDiscarded, CleanFailed, OffloadedError
from pipeline.schemas import DeadLetter, RawItem


@pytest.mark.parametrize(
    ("exc", "kind", "status"),
    [
        (CleanFailed("no text", stage="clean"), "clean_failed", "error"),
        (ArticleDiscarded("too short", stage="clean"), "discarded", "discarded"),
        (OffloadedError("discarded", "article discarded: too short"), "discarded", "discarded"),
        (ValueError("boom"), "ValueError", "error"),
    ],
    ids=["stage-error", "discarded", "discarded-from-pool", "foreign"],
)
async def test_stage_guard_dead_letters_and_suppresses(exc: Exception, kind: str, status: str) -> None:
    from pipeline.metrics import STAGE_MESSAGES

    sent: list[DeadLetter] = []

    async def send(letter: DeadLetter) -> None:
        sent.append(letter)

    before = STAGE_MESSAGES.labels("test", status)._value.get()
    async with stage_guard("test", Origin(payload=b"\xffraw", topic="news.raw", partition=2, offset=7, key=b"k"),
                           send):
        raise exc
    assert len(sent) == 1
    letter = sent[0]
    assert (letter.stage, letter.kind, letter.topic, letter.partition, letter.offset, letter.key) == (
        "test", kind, "news.raw", 2, 7, "k")
    assert letter.payload == "\ufffdraw"  # undecodable bytes replaced, never an exception
    assert STAGE_MESSAGES.labels("test", status)._value.get() == before + 1


async def test_stage_guard_lets_bad_json_through_as_invalid_message() -> None:
    sent: list[DeadLetter] = []

    async def send(letter: DeadLetter) -> None:
        sent.append(letter)

    async with stage_guard("clean", Origin(payload=b"not json"), send):
        RawItem.model_validate_json(b"not json")
    assert [d.kind for d in sent] == ["invalid_message"]


def test_dead_letter_payload_is_capped_to_fit_a_kafka_message() -> None:
    from pipeline.dlq import MAX_PAYLOAD_CHARS, dead_letter_for

    letter = dead_letter_for("clean", ValueError("bad"), Origin(payload="x" * (MAX_PAYLOAD_CHARS + 10)))
    assert len(letter.payload) == MAX_PAYLOAD_CHARS and "truncated" in letter.error


# The worker's producer refuses a record of more than 1,000,000 bytes (Faust's producer_max_request_size), the broker
# one of more than 1,048,588 (max.message.bytes): every letter must fit, whatever the message that failed.
_PRODUCER_LIMIT = 1_000_000


@pytest.mark.parametrize("payload", [
    bytes(range(256)) * (10 * 1024 * 1024 // 256),  # 10 MB, every byte value: U+FFFD and escaped controls
    random.Random(1).randbytes(300_000),  # not UTF-8: its base64 copy beside the text made 1.1 MB
    random.Random(2).randbytes(1_048_000),  # the largest incompressible message a default topic accepts
    b"\x01" * 10_000_000,  # six bytes in JSON per byte
    "\u00e9\u4e2d\U0001f600" * 1_000_000,  # multi-byte characters
], ids=["ten_mb_every_byte", "binary_300kb", "binary_1mb", "controls_10mb", "multibyte_text"])
def test_a_dead_letter_fits_a_kafka_message_whatever_failed(payload: bytes | str) -> None:
    from pipeline.dlq import dead_letter_for

    letter = dead_letter_for("clean", ValueError("bad \x00" * 1000), Origin(payload=payload, topic="news.raw",
                                                                            key=b"k"))
    size = len(letter.model_dump_json().encode()) + len((letter.key or "").encode())
    assert size < _PRODUCER_LIMIT - 10_000, size
    assert letter.payload_truncated and "truncated" in letter.error and letter.payload_base64 is None
    text = payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")
    assert text.startswith(letter.payload) and len(letter.payload) > 30_000  # cut, but still worth reading


def test_a_huge_key_is_cut_too_and_the_letter_is_not_replayed() -> None:
    from pipeline.dlq import MAX_KEY_CHARS, dead_letter_for

    letter = dead_letter_for("clean", ValueError("bad"), Origin(payload=b"{}", topic="news.raw",
                                                                key=b"\x00k" * 1_000_000))
    assert letter.key == "\x00k" * (MAX_KEY_CHARS // 2) and letter.payload == "{}"
    assert letter.payload_truncated and "key truncated" in letter.error
    assert len(letter.model_dump_json().encode()) + len(letter.key.encode()) < 100_000


def test_a_message_kafka_refuses_for_its_size_is_a_message_too_large() -> None:
    from aiokafka.errors import MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    from pipeline.dlq import error_kind

    try:  # as Faust raises it when aiokafka's producer refuses the record before sending it
        try:
            raise MessageSizeTooLargeError("The message is 1001515 bytes when serialized")
        except MessageSizeTooLargeError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    except ProducerSendError as exc:
        assert error_kind(exc) == "message_too_large"
    assert error_kind(MessageSizeTooLargeError()) == "message_too_large"  # the broker's answer, from the future
    assert error_kind(ProducerSendError("Error while sending: KafkaTimeoutError()")) == "ProducerSendError"


def test_a_small_message_that_is_not_utf8_keeps_its_bytes_for_replay() -> None:
    from pipeline.dlq import dead_letter_for, original_payload

    raw = random.Random(3).randbytes(100_000)
    letter = dead_letter_for("sink", ValueError("bad"), Origin(payload=raw, topic="news.enriched", key=b"k"))
    assert not letter.payload_truncated and letter.key == "k"
    assert original_payload(DeadLetter.model_validate_json(letter.model_dump_json())) == raw


async def test_dead_letter_retries_while_kafka_fails_and_counts_once() -> None:
    from pipeline.metrics import DEAD_LETTERS

    sent: list[DeadLetter] = []
    failures = [RuntimeError("kafka down")]

    async def send(letter: DeadLetter) -> None:
        if failures:
            raise failures.pop()
        sent.append(letter)

    before = DEAD_LETTERS.labels("sink", "ValueError")._value.get()
    letter = await dead_letter("sink", ValueError("bad"), Origin(payload=b"{}", topic="news.enriched"), send,
                               retry=Retry(initial_s=0.001, max_s=0.001))
    assert sent == [letter] and letter.kind == "ValueError"
    assert DEAD_LETTERS.labels("sink", "ValueError")._value.get() == before + 1


async def test_dead_letter_without_retry_lets_a_send_failure_through_uncounted() -> None:
    from pipeline.metrics import DEAD_LETTERS

    async def send(letter: DeadLetter) -> None:
        raise RuntimeError("kafka down")

    before = DEAD_LETTERS.labels("alert", "ValueError")._value.get()
    with pytest.raises(RuntimeError):
        await dead_letter("alert", ValueError("bad"), Origin(payload=b"{}"), send, retry=None)
    assert DEAD_LETTERS.labels("alert", "ValueError")._value.get() == before
