"""Throw-away Elasticsearch indices for the integration tests: filled as the live sink fills them, deleted after
(with the test's index template and, for worker tests, its topics)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

from pipeline.index import make_async_client, make_client, template_name
from pipeline.schemas import EnrichedArticle
from pipeline.settings import Settings, load_settings
from pipeline.sink import ElasticSink
from pipeline.topics import ensure_topics
from testkit.topics import delete_topics

__all__ = ["delete_indices", "index_through_sink", "indexed_articles", "isolated_settings", "remove_test_data"]


@asynccontextmanager
async def indexed_articles(articles: Sequence[EnrichedArticle], unique: str,
                           environ: dict[str, str] | None = None) -> AsyncIterator[Settings]:
    """Settings whose alias holds exactly ``articles`` (refreshed); index and template removed afterwards."""
    settings = load_settings(environ={"NEWSFLOW_ES_INDEX_PREFIX": f"t-{unique}", "NEWSFLOW_ES_ALIAS": f"ta-{unique}",
                                      **(environ or {})})
    try:
        await index_through_sink(settings, articles)
        yield settings
    finally:
        es = make_async_client(settings.es)
        try:
            for index in await es.indices.get(index=f"t-{unique}-*"):
                await es.indices.delete(index=index)
            await es.indices.delete_index_template(name=f"t-{unique}-template")
        finally:
            await es.close()


async def index_through_sink(settings: Settings, articles: Sequence[EnrichedArticle]) -> None:
    """Index as the live sink does (same bulk path), then refresh so that searches and counts see them."""
    es = make_async_client(settings.es)
    try:
        sink = ElasticSink(es, settings)
        await sink.start()
        assert await sink.index_articles(articles) == []
        await es.indices.refresh(index=settings.es.alias)
    finally:
        await es.close()


def delete_indices(settings: Settings, pattern: str, template: str) -> None:
    """Delete the indices ``pattern`` matches (closed ones too) and the index template ``template``."""
    es = make_client(settings.es)
    try:
        for index in es.indices.get(index=pattern, allow_no_indices=True, expand_wildcards="all"):
            es.indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=template)
    finally:
        es.close()


@contextmanager
def isolated_settings(env: dict[str, str], unique: str, indices: str) -> Iterator[Settings]:
    """Settings from ``env`` (its own topic prefix ``t<unique>.``, index prefix and alias), their topics created; on
    exit the indices ``indices`` matches, the index template and the topics are deleted."""
    settings = load_settings(environ=env)
    ensure_topics(settings)
    try:
        yield settings
    finally:
        delete_indices(settings, indices, template_name(settings))
        delete_topics(settings.kafka.bootstrap, unique)


def remove_test_data(stack: Settings, unique: str) -> None:
    """Delete the test's indices (closed ones too), index template and topics."""
    delete_indices(stack, f"t{unique}-*", f"t{unique}-template")
    delete_topics(stack.kafka.bootstrap, unique)
