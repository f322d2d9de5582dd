"""A throw-away index holding given articles, for tests that search or match on the real Elasticsearch node."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from pipeline.index import make_async_client
from pipeline.schemas import EnrichedArticle
from pipeline.settings import Settings, load_settings
from pipeline.sink import ElasticSink


@asynccontextmanager
async def indexed_articles(articles: Sequence[EnrichedArticle], unique: str,
                           environ: dict[str, str] | None = None) -> AsyncIterator[Settings]:
    """Settings whose alias holds exactly ``articles`` (refreshed); index and template removed afterwards."""
    settings = load_settings(environ={"NEWSFLOW_ES_INDEX_PREFIX": f"t-{unique}", "NEWSFLOW_ES_ALIAS": f"ta-{unique}",
                                      **(environ or {})})
    es = make_async_client(settings.es)
    try:
        sink = ElasticSink(es, settings)
        await sink.start()
        assert await sink.index_articles(articles) == []
        await es.indices.refresh(index=settings.es.alias)
        yield settings
    finally:
        for index in await es.indices.get(index=f"t-{unique}-*"):
            await es.indices.delete(index=index)
        await es.indices.delete_index_template(name=f"t-{unique}-template")
        await es.close()
