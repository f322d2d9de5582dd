"""Dead letters for operators: list and show what is on ``news.dlq``, replay it onto its source topic once.

A letter is addressed by its position on ``news.dlq`` (one partition: the offset alone names it). Replay
puts :func:`pipeline.dlq.original_payload` back on the letter's ``topic`` with its key, waits for the broker's
acknowledgement, then records the letter on the compacted ``news.dlq.replayed`` (key ``"<partition>:<offset>"``),
so a second replay skips it. Between the two writes a crash can replay a letter twice; every stage is
idempotent on replays (see :mod:`pipeline.agents`), so at-least-once is safe.

Letters of kind ``discarded`` (an article the quality gate refused: too short, not an article) are not errors:
replay leaves them unless ``--kind discarded`` asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from pipeline.dlq import original_payload
from pipeline.errors import KafkaUnavailable, LetterNotFound
from pipeline.logs import get_logger
from pipeline.schemas import DLQ_REPLAYED_TOPIC, DLQ_TOPIC, DeadLetter, ReplayRecord
from pipeline.security import kafka_security_config
from pipeline.settings import Settings
from pipeline.topic_reader import TopicReader
from pipeline.topics import ensure_replayed_topic

__all__ = [
    "DlqEntry",
    "ReplayResult",
    "dead_letter_counts",
    "list_letters",
    "replay_letters",
    "replayed_keys",
    "show_letter",
]

log = get_logger(__name__)

_SEND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DlqEntry:
    """One record of news.dlq: the letter, or why it could not be read, and whether it was replayed."""

    partition: int
    offset: int
    timestamp: datetime
    letter: DeadLetter | None
    unreadable: str | None = None
    replayed: bool = False

    @property
    def key(self) -> str:
        return replay_key(self.partition, self.offset)

    def as_dict(self, *, payload: bool = False) -> dict[str, Any]:
        # The letter's own place on news.dlq (what `dlq show` takes) apart from its source's topic, partition and
        # offset, which are fields of the letter itself.
        out: dict[str, Any] = {"dlq_partition": self.partition, "dlq_offset": self.offset,
                               "timestamp": self.timestamp.isoformat(), "replayed": self.replayed}
        if self.letter is None:
            out["unreadable"] = self.unreadable
            return out
        data = self.letter.model_dump(mode="json")
        if not payload:
            data.pop("payload", None)
            data.pop("payload_base64", None)
            data["payload_chars"] = len(self.letter.payload)
        out.update(data)
        return out


def replay_key(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def _entry(record: Any, replayed: set[str]) -> DlqEntry:
    when = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    try:
        letter = DeadLetter.model_validate_json(record.value)
        unreadable = None
    except (ValidationError, ValueError) as exc:
        letter, unreadable = None, str(exc)[:300]
    return DlqEntry(record.partition, record.offset, when, letter, unreadable,
                    replay_key(record.partition, record.offset) in replayed)


def replayed_keys(reader: TopicReader, settings: Settings) -> set[str]:
    """The letters already replayed (keys of news.dlq.replayed; empty when nothing was ever replayed)."""
    return {r.key.decode("utf-8") for r in reader.scan(settings.kafka.topic(DLQ_REPLAYED_TOPIC))
            if r.key is not None and r.value is not None}


def _matches(entry: DlqEntry, stage: str | None, kind: str | None) -> bool:
    if entry.letter is None:
        return stage is None and kind is None
    return (stage is None or entry.letter.stage == stage) and (kind is None or entry.letter.kind == kind)


def list_letters(settings: Settings, *, stage: str | None = None, kind: str | None = None,
                 since: datetime | None = None) -> list[DlqEntry]:
    """The dead letters on news.dlq, oldest first, filtered by stage, kind and time written."""
    with TopicReader(settings, "dlq") as reader:
        replayed = replayed_keys(reader, settings)
        entries = [_entry(r, replayed) for r in reader.scan(settings.kafka.topic(DLQ_TOPIC), since=since)]
    # The scan starts at the first record at or after `since`; record times need not grow with offsets.
    return [e for e in entries if _matches(e, stage, kind) and (since is None or e.timestamp >= since)]


def show_letter(settings: Settings, offset: int, partition: int = 0) -> DlqEntry:
    """One letter by its offset on news.dlq.

    Raises:
        LetterNotFound: no record at that offset (never written, or deleted by retention).
    """
    with TopicReader(settings, "dlq") as reader:
        replayed = replayed_keys(reader, settings)
        for record in reader.scan(settings.kafka.topic(DLQ_TOPIC), start={partition: offset}):
            if record.partition == partition and record.offset == offset:
                return _entry(record, replayed)
            if record.partition == partition and record.offset > offset:
                break
    raise LetterNotFound(f"no dead letter at offset {offset} of {settings.kafka.topic(DLQ_TOPIC)}[{partition}]")


def dead_letter_counts(reader: TopicReader, settings: Settings) -> dict[str, Any]:
    """Dead letters by stage and kind, and how many were replayed (for ``newsflow status``)."""
    replayed = replayed_keys(reader, settings)
    by_stage: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    total = done = 0
    for record in reader.scan(settings.kafka.topic(DLQ_TOPIC)):
        entry = _entry(record, replayed)
        stage = entry.letter.stage if entry.letter else "unreadable"
        kind = entry.letter.kind if entry.letter else "unreadable"
        by_stage[stage] = by_stage.get(stage, 0) + 1
        by_kind[kind] = by_kind.get(kind, 0) + 1
        total += 1
        done += entry.replayed
    return {"total": total, "replayed": done, "by_stage": dict(sorted(by_stage.items())),
            "by_kind": dict(sorted(by_kind.items()))}


@dataclass
class ReplayResult:
    replayed: list[DlqEntry] = field(default_factory=list)
    skipped: list[tuple[DlqEntry, str]] = field(default_factory=list)  # (letter, why)


def _why_not(entry: DlqEntry, kind: str | None) -> str | None:
    """Why a letter cannot or should not be replayed; None when it can."""
    letter = entry.letter
    if letter is None:
        return f"unreadable letter: {entry.unreadable}"
    if entry.replayed:
        return "already replayed"
    if not letter.topic:
        return "the letter does not name its source topic"
    if letter.payload_truncated:
        return "the payload was truncated when dead-lettered; the original is lost"
    if letter.kind == "discarded" and kind != "discarded":
        return "discarded by the quality gate, not an error (replay with --kind discarded)"
    return None


def replay_letters(settings: Settings, *, stage: str | None = None, kind: str | None = None,
                   offsets: list[int] | None = None) -> ReplayResult:
    """Put the matching letters' original payloads back on their source topics, once each.

    Raises:
        KafkaUnavailable: Kafka unreachable, or a send was not acknowledged (what was replayed before is recorded).
    """
    replayed_topic = ensure_replayed_topic(settings)
    result = ReplayResult()
    with TopicReader(settings, "dlq-replay") as reader:
        replayed = replayed_keys(reader, settings)
        entries = [_entry(r, replayed) for r in reader.scan(settings.kafka.topic(DLQ_TOPIC))]
    chosen = [e for e in entries if _matches(e, stage, kind) and (offsets is None or e.offset in offsets)]
    if not chosen:
        return result
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka.servers,
                                 client_id=f"{settings.kafka.client_id}-dlq-replay", acks="all", retries=5,
                                 **kafka_security_config(settings.kafka))
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {settings.kafka.bootstrap}: {exc}") from exc
    try:
        for entry in chosen:
            why = _why_not(entry, kind)
            if why is not None:
                result.skipped.append((entry, why))
                continue
            letter = entry.letter
            assert letter is not None and letter.topic is not None  # checked by _why_not
            try:
                producer.send(letter.topic, key=letter.key.encode("utf-8") if letter.key is not None else None,
                              value=original_payload(letter)).get(timeout=_SEND_TIMEOUT_S)
                record = ReplayRecord(dlq_partition=entry.partition, dlq_offset=entry.offset, stage=letter.stage,
                                      kind=letter.kind, topic=letter.topic)
                producer.send(replayed_topic, key=entry.key.encode("utf-8"),
                              value=record.model_dump_json().encode("utf-8")).get(timeout=_SEND_TIMEOUT_S)
            except KafkaError as exc:
                raise KafkaUnavailable(f"replay of dead letter {entry.offset} not acknowledged by Kafka: {exc}; "
                                 f"{len(result.replayed)} replayed before it") from exc
            log.info("dead letter replayed", offset=entry.offset, stage=letter.stage, kind=letter.kind,
                     topic=letter.topic)
            result.replayed.append(entry)
    finally:
        producer.close(timeout=_SEND_TIMEOUT_S)
    return result
