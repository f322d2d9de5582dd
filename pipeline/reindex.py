"""``newsflow reindex``: rebuild the indices from ``news.enriched`` and switch the read alias in one atomic step.

This is how a template or analyzer change reaches articles already indexed. Steps:

 1. make the template current (:func:`pipeline.index.ensure_index_template`) and note the indices behind the
    read alias (the *old* ones) and their document count;
 2. read ``news.enriched`` from its first record to the end offsets of now and index every article, through the
    sink's bulk path (:class:`pipeline.sink.ElasticSink`), into *new* monthly indices
    ``r{stamp}.{prefix}-{YYYY.MM}``, created with the template's mappings and settings but without the alias.
    The names deliberately do not start with the prefix: the template's ``{prefix}-*`` would add the alias at
    once, and a wildcard such as Kibana's ``news*`` would match them, both showing every article twice while
    the rebuild runs. A correction goes where its first version went, as in the sink;
 3. catch up with what the live sink indexed meanwhile (read on from where step 2 stopped), refresh, and compare:
    fewer documents than the old indices (``news.enriched``'s retention dropped old articles) stops here, the
    new indices deleted, unless ``--allow-fewer``;
 4. one ``POST _aliases`` moves the read alias from the old indices to the new ones: searches see the old
    indices until this call and the new ones after it, never both nor neither. After ``sink.reindex_grace_s``
    (searches already running on the old indices finish: one losing an index mid-way would answer with partial
    results) a second call deletes the old indices (``remove_index``) and makes each monthly name
    ``{prefix}-YYYY.MM`` an alias of its new index, so the live sink keeps writing to that name;
 5. catch up once more: articles the live sink wrote into the old indices between step 3 and step 4 are on
    the topic and are indexed again (``_id`` = article id, so repeating one is harmless).

Old indices whose name has no ``YYYY.MM`` month are left in place, behind the alias, and reported.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError
from pydantic import ValidationError

from pipeline.errors import ReindexError
from pipeline.index import build_template, ensure_index_template, index_name
from pipeline.logs import get_logger
from pipeline.schemas import ENRICHED_TOPIC, EnrichedArticle
from pipeline.settings import Settings
from pipeline.sink import ElasticSink, route_time
from pipeline.topic_reader import TopicReader

__all__ = ["ReindexError", "ReindexResult", "reindex"]

log = get_logger(__name__)

_BATCH = 500
_MONTH = re.compile(r"(\d{4}\.\d{2})$")
_CATCH_UP_PASSES = 3


@dataclass
class ReindexResult:
    alias: str
    documents_before: int
    documents_after: int = 0
    records_read: int = 0
    invalid: int = 0  # records of news.enriched that are not EnrichedArticles (dead-lettered by the sink already)
    rejected: int = 0  # articles the new indices refused
    new_indices: list[str] = field(default_factory=list)
    removed_indices: list[str] = field(default_factory=list)
    kept_indices: list[str] = field(default_factory=list)
    took_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _month(index: str) -> str:
    match = _MONTH.search(index)
    assert match is not None
    return match.group(1)


class _Rebuild:
    """The new indices being filled: names, creation, where each article id went."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings, analyzer: str, stamp: str) -> None:
        self.es = es
        self.settings = settings
        self.stamp = stamp
        body = build_template(settings, analyzer)["template"]
        body.pop("aliases", None)
        self.body = body
        self.by_month: dict[str, str] = {}  # "YYYY.MM" -> new index
        self.placed: dict[str, str] = {}  # article id -> new index of its first version
        self.sink = ElasticSink(es, settings, index_for=self.index_for)

    def name(self, month: str) -> str:
        return f"r{self.stamp}.{self.settings.es.index_prefix}-{month}"

    async def create(self, month: str) -> str:
        if month not in self.by_month:
            index = self.name(month)
            await self.es.indices.create(index=index, settings=self.body["settings"], mappings=self.body["mappings"])
            self.by_month[month] = index
            log.info("reindex: index created", index=index)
        return self.by_month[month]

    def index_for(self, article: EnrichedArticle) -> str:
        return self.placed[article.id]

    async def add(self, articles: list[EnrichedArticle]) -> int:
        """Index one batch; returns the number rejected."""
        for article in articles:
            if article.id not in self.placed:
                month = index_name(self.settings, route_time(article)).rsplit("-", 1)[1]
                self.placed[article.id] = await self.create(month)
        return len(await self.sink.index_articles(articles))


async def _fill(add: Callable[[list[EnrichedArticle]], Awaitable[int]], reader: TopicReader, topic: str,
                result: ReindexResult, start: dict[int, int] | None) -> dict[int, int]:
    """Index the records of ``topic`` from ``start`` (or its beginning) to its end; return where it stopped."""
    positions = dict(start or {})
    batch: list[EnrichedArticle] = []
    for record in reader.scan(topic, start=start):
        positions[record.partition] = record.offset + 1
        result.records_read += 1
        try:
            batch.append(EnrichedArticle.model_validate_json(record.value))
        except (ValidationError, ValueError):
            result.invalid += 1
            continue
        if len(batch) >= _BATCH:
            result.rejected += await add(batch)
            batch = []
    if batch:
        result.rejected += await add(batch)
    return positions


async def _count(es: AsyncElasticsearch, index: str) -> int:
    try:
        return int((await es.count(index=index))["count"])
    except NotFoundError:
        return 0


async def reindex(es: AsyncElasticsearch, settings: Settings, *, allow_fewer: bool = False) -> ReindexResult:
    """Rebuild the read alias's indices from news.enriched; see the module docstring.

    Raises:
        ReindexError: the topic holds fewer articles than the index (and not ``allow_fewer``), or Elasticsearch
            refused a step; the old indices are then untouched and the new ones deleted.
        KafkaUnavailable: Kafka unreachable.
    """
    started = time.monotonic()
    alias = settings.es.alias
    topic = settings.kafka.topic(ENRICHED_TOPIC)
    try:
        # 1.
        setup = await ensure_index_template(es, settings)
        try:
            old = sorted(await es.indices.get_alias(name=alias))
        except NotFoundError:
            old = []
        result = ReindexResult(alias=alias, documents_before=await _count(es, alias))
        rebuild = _Rebuild(es, settings, setup.analyzer, datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    except (ApiError, TransportError) as exc:
        raise ReindexError(f"reindex: Elasticsearch refused the preparation: {exc}") from exc
    switched = False
    try:
        with TopicReader(settings, "reindex") as reader:
            # 2.
            positions = await _fill(rebuild.add, reader, topic, result, None)
            log.info("reindex: topic read", records=result.records_read, indices=sorted(rebuild.by_month.values()))
            # 3.
            removable = [index for index in old if _MONTH.search(index)]
            result.kept_indices = [index for index in old if index not in removable]
            for index in removable:
                await rebuild.create(_month(index))
            await rebuild.create(index_name(settings, datetime.now(UTC)).rsplit("-", 1)[1])
            for attempt in range(_CATCH_UP_PASSES):
                before = result.records_read
                positions = await _fill(rebuild.add, reader, topic, result, positions)
                new = sorted(rebuild.by_month.values())
                await es.indices.refresh(index=",".join(new))
                count_new = sum([await _count(es, index) for index in new])
                count_old = await _count(es, alias)
                # More documents behind the alias than rebuilt: either the live sink indexed some since the last
                # pass (read on), or the topic no longer holds them (retention).
                if count_new >= count_old or (result.records_read == before and attempt > 0):
                    break
            if count_new < count_old and not allow_fewer:
                raise ReindexError(
                    f"{topic} holds {count_new} articles but alias {alias} has {count_old}: the topic's retention "
                    f"has dropped older articles, which a rebuild would lose. Nothing was switched; "
                    f"--allow-fewer switches anyway")
            # 4. The read alias moves in one call; the old indices leave it (still there for running searches).
            old_aliases: dict[str, Any] = (dict(await es.indices.get_alias(index=",".join(removable)))
                                           if removable else {})
            monthly = {month: f"{settings.es.index_prefix}-{month}" for month in rebuild.by_month}
            concrete = set(removable) & set(monthly.values())  # monthly names that are old indices, not aliases
            actions: list[dict[str, Any]] = []
            for month, index in sorted(rebuild.by_month.items()):
                actions.append({"add": {"index": index, "alias": alias}})
                if monthly[month] not in concrete:
                    actions.append({"add": {"index": index, "alias": monthly[month]}})
            for index in removable:
                for name in old_aliases.get(index, {}).get("aliases", {}):
                    if name == alias or name in monthly.values():
                        actions.append({"remove": {"index": index, "alias": name}})
            await es.indices.update_aliases(actions=actions)
            switched = True
            result.new_indices = new
            log.info("reindex: alias switched", alias=alias, new=new)
            # Then the old indices go, and monthly names that were old indices become aliases of the new ones.
            await asyncio.sleep(settings.sink.reindex_grace_s)
            if removable:
                actions = [{"remove_index": {"index": index}} for index in removable]
                actions += [{"add": {"index": rebuild.by_month[month], "alias": name}}
                            for month, name in monthly.items() if name in concrete]
                await es.indices.update_aliases(actions=actions)
            result.removed_indices = removable
            log.info("reindex: old indices removed", removed=removable)
            # 5.
            # Now the sink's own routing (monthly names, corrections looked up behind the alias) reaches them.
            live = ElasticSink(es, settings)

            async def add_live(batch: list[EnrichedArticle]) -> int:
                return len(await live.index_articles(batch))

            await _fill(add_live, reader, topic, result, positions)
        await es.indices.refresh(index=alias)
        result.documents_after = await _count(es, alias)
    except (ApiError, TransportError) as exc:
        if not switched:
            await _drop(es, rebuild)
        raise ReindexError(f"reindex: Elasticsearch refused a step ({'after' if switched else 'before'} the "
                           f"alias switch): {exc}") from exc
    except BaseException:
        if not switched:
            await _drop(es, rebuild)
        raise
    result.took_s = round(time.monotonic() - started, 1)
    return result


async def _drop(es: AsyncElasticsearch, rebuild: _Rebuild) -> None:
    """Delete the new indices of a reindex that did not switch (the old ones were never touched)."""
    for index in rebuild.by_month.values():
        try:
            await es.options(ignore_status=404).indices.delete(index=index)
        except (ApiError, TransportError) as exc:
            log.error("reindex: could not delete a new index", index=index, error=str(exc)[:300])
