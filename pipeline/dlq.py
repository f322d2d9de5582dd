"""Dead letters: ``stage_guard`` turns any failure in a stage into a DeadLetter on news.dlq and moves on.

Like quixstreams' ``on_processing_error`` returning True: the error is logged, counted and written to
``news.dlq`` with the original payload, then suppressed, so one bad message never stops a stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pipeline.backoff import backoff_delay
from pipeline.logs import get_logger
from pipeline.metrics import DEAD_LETTERS, STAGE_ERRORS, STAGE_MESSAGES, STAGE_SECONDS
from pipeline.schemas import DeadLetter

__all__ = ["MAX_KEY_CHARS", "MAX_PAYLOAD_BYTES", "MAX_PAYLOAD_CHARS", "DeadLetterSender", "Origin", "Retry",
           "dead_letter", "dead_letter_for", "deliver_dead_letter", "error_kind", "origin_of", "original_payload",
           "stage_guard"]

log = get_logger(__name__)

DeadLetterSender = Callable[[DeadLetter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from: what a dead letter needs besides the error."""

    payload: bytes | str | None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | str | None = None

    @staticmethod
    def text(value: bytes | str | None) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return value.decode("utf-8", errors="replace")


def origin_of(event: Any) -> Origin:
    """The Origin of a consumed Faust event (its value as it came, else the raw message value)."""
    m = event.message
    payload = event.value if isinstance(event.value, (bytes, str)) else m.value
    return Origin(payload=payload, topic=m.topic, partition=m.partition, offset=m.offset, key=m.key)


def error_kind(exc: BaseException) -> str:
    """The ``kind`` of a newsflow error; ``invalid_message`` for bad JSON or schema; ``message_too_large`` for an
    output Kafka refused for its size; else the class name."""
    if isinstance(exc, ValidationError):
        return "invalid_message"
    if _too_large(exc):
        return "message_too_large"
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) else type(exc).__name__


def _too_large(exc: BaseException) -> bool:
    """Kafka refused a message for its size: the producer before sending it (Faust raises ProducerSendError from
    aiokafka's error) or the broker. Both Kafka clients name the error MessageSizeTooLargeError."""
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None:
            return False
        if type(cause).__name__ == "MessageSizeTooLargeError":
            return True
        cause = cause.__cause__
    return False


# Kafka's default message limit is 1 MB (the broker's max.message.bytes; the worker's producer refuses a record of
# more than 1,000,000 bytes before sending it): a dead letter must fit even when the message that failed was far
# larger (10 MB of compressible bytes fits a topic), or the dead letter could not be written and the stage would
# fail on it. So the payload is bounded in characters and in bytes as the letter's JSON writes it (UTF-8: U+FFFD,
# which stands for each byte that is not UTF-8, takes 3 bytes; an escaped control character 6), its base64 copy
# included; and the key, which a letter carries twice (in its JSON and as its Kafka key), is bounded too.
MAX_PAYLOAD_CHARS = 400_000
MAX_PAYLOAD_BYTES = 600_000
MAX_KEY_CHARS = 4096


def dead_letter_for(stage: str, exc: BaseException, origin: Origin) -> DeadLetter:
    text = Origin.text(origin.payload) or ""
    error = str(exc)[:2000] or type(exc).__name__
    payload = text[:MAX_PAYLOAD_CHARS]
    # Replay must put back the very bytes that failed; text decoding with replacement would alter non-UTF-8 ones.
    raw_b64 = None
    if isinstance(origin.payload, bytes) and len(payload) == len(text) and not _is_utf8(origin.payload):
        raw_b64 = base64.b64encode(origin.payload).decode("ascii")
    if _json_bytes(payload) + len(raw_b64 or "") > MAX_PAYLOAD_BYTES:
        raw_b64 = None
        payload = _cut_to_json_bytes(payload, MAX_PAYLOAD_BYTES)
    truncated = len(payload) < len(text)
    if truncated:
        error += f" (payload truncated from {len(text)} characters)"
    key = Origin.text(origin.key)
    if key is not None and len(key) > MAX_KEY_CHARS:
        error += f" (key truncated from {len(key)} characters)"
        key = key[:MAX_KEY_CHARS]
        truncated = True  # replay could not put the message back as it was
    return DeadLetter(
        stage=stage,
        kind=error_kind(exc),
        error=error,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        key=key,
        payload=payload,
        payload_base64=raw_b64,
        payload_truncated=truncated,
    )


def _json_bytes(text: str) -> int:
    """The size of ``text`` as a JSON string in a letter (pydantic escapes what ``json.dumps`` does)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", errors="surrogatepass"))


def _cut_to_json_bytes(text: str, limit: int) -> str:
    """The longest-enough prefix of ``text`` whose JSON takes at most ``limit`` bytes (each pass cuts in
    proportion, so it ends in a few passes)."""
    size = _json_bytes(text)
    while size > limit:
        text = text[: len(text) * limit // size]
        size = _json_bytes(text)
    return text


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def original_payload(letter: DeadLetter) -> bytes:
    """The bytes of the message that failed, as they were on the source topic."""
    if letter.payload_base64 is not None:
        return base64.b64decode(letter.payload_base64)
    return letter.payload.encode("utf-8")


@asynccontextmanager
async def stage_guard(stage: str, origin: Origin, send_dead_letter: DeadLetterSender, *,
                      count: bool = True) -> AsyncIterator[None]:
    """Run one message through a stage: count and time it; on any exception dead-letter it and carry on.

    ``count=False`` guards a second step of a message already counted (a batch stage's send): failures are
    still dead-lettered and counted, successes are not counted twice.

    ``asyncio.CancelledError`` (worker shutdown) is not an error of the message and propagates, so the
    offset is not committed and the message is processed again after restart.
    """
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        kind = error_kind(exc)
        # ArticleDiscarded's kind; it may have crossed the offload pool, so compare kinds, not classes.
        STAGE_MESSAGES.labels(stage, "discarded" if kind == "discarded" else "error").inc()
        STAGE_ERRORS.labels(stage, kind).inc()
        # Sent once: should Kafka fail, the error propagates and the message, not acknowledged, comes again.
        await dead_letter(stage, exc, origin, send_dead_letter, retry=None)
    else:
        if count:
            STAGE_MESSAGES.labels(stage, "ok").inc()
    finally:
        if count:
            STAGE_SECONDS.labels(stage).observe(time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class Retry:
    """How a dead letter waits for Kafka (:func:`deliver_dead_letter`'s backoff bounds)."""

    initial_s: float
    max_s: float


async def dead_letter(stage: str, exc: BaseException, origin: Origin, send_dead_letter: DeadLetterSender, *,
                      retry: Retry | None, event: str = "message dead-lettered", **log_fields: Any) -> DeadLetter:
    """The one dead-letter path: build the letter for ``exc``, log it once, send it, count it once sent.

    ``retry=None`` sends once and lets a send failure propagate (for a caller whose message then stays
    unacknowledged); else the send is retried while Kafka fails (for a caller that acks right after).
    ``event`` and ``log_fields`` name and add to (or override) the log line's fields: stage, kind, error, topic,
    partition, offset.
    """
    letter = dead_letter_for(stage, exc, origin)
    fields: dict[str, Any] = {"stage": stage, "kind": letter.kind, "error": letter.error[:300], "topic": origin.topic,
                              "partition": origin.partition, "offset": origin.offset}
    fields.update(log_fields)
    # A discarded article is the stage's decision, not a fault: logged at info.
    log_fn = log.info if letter.kind == "discarded" else log.warning
    log_fn(event, **fields)
    if retry is None:
        await send_dead_letter(letter)
        DEAD_LETTERS.labels(letter.stage, letter.kind).inc()
    else:
        await deliver_dead_letter(send_dead_letter, letter, initial_s=retry.initial_s, max_s=retry.max_s)
    return letter


async def deliver_dead_letter(send_dead_letter: DeadLetterSender, letter: DeadLetter, *, initial_s: float,
                              max_s: float) -> None:
    """Send a dead letter, retrying while Kafka fails (backoff from ``initial_s`` up to ``max_s``): for a caller
    that acks its message right after, so the letter must not be lost (the sink). Counted once delivered."""
    attempt = 0
    while True:
        try:
            await send_dead_letter(letter)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the producer's own errors: Kafka is down, so wait for it
            delay = backoff_delay(attempt, initial_s=initial_s, max_s=max_s)
            log.warning("dead letter not delivered, retrying", stage=letter.stage, error=str(exc)[:300],
                        delay_s=round(delay, 2))
            await asyncio.sleep(delay)
            attempt += 1
            continue
        DEAD_LETTERS.labels(letter.stage, letter.kind).inc()
        return
