"""The index template on the real node: created once, upgraded when its version grows, never downgraded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

from pipeline.index import build_template, ensure_index_template, make_async_client, template_name
from pipeline.settings import Settings, load_settings

pytestmark = pytest.mark.integration


@pytest.fixture()
async def es_settings(stack: Settings, unique: str) -> AsyncIterator[tuple[AsyncElasticsearch, Settings]]:
    settings = load_settings(environ={"NEWSFLOW_ES_INDEX_PREFIX": f"tu-{unique}", "NEWSFLOW_ES_ALIAS": f"tua-{unique}"})
    es = make_async_client(settings.es)
    try:
        yield es, settings
    finally:
        for index in await es.indices.get(index=f"tu-{unique}-*"):
            await es.indices.delete(index=index)
        await es.options(ignore_status=404).indices.delete_index_template(name=template_name(settings))
        await es.close()


async def test_template_created_then_unchanged(es_settings: tuple[AsyncElasticsearch, Settings]) -> None:
    es, settings = es_settings
    first = await ensure_index_template(es, settings)
    assert first.action == "created" and first.analyzer in ("english", "standard")
    again = await ensure_index_template(es, settings)
    assert again.action == "unchanged"
    index = (await es.indices.get(index=first.current_index))[first.current_index]
    assert settings.es.alias in index["aliases"]
    assert index["settings"]["index"]["refresh_interval"] == "1s"
    assert index["settings"]["index"]["analysis"]["analyzer"]["newsflow_text"]["type"] == first.analyzer
    assert index["mappings"]["dynamic"] == "false"


async def test_older_template_is_upgraded_and_indices_get_new_fields(
    es_settings: tuple[AsyncElasticsearch, Settings],
) -> None:
    es, settings = es_settings
    old = build_template(settings, "standard")
    old["version"] = 0
    del old["template"]["mappings"]["properties"]["entity_labeled"]
    old["meta"] = old.pop("_meta")
    await es.indices.put_index_template(name=template_name(settings), **old)
    await es.indices.create(index=f"{settings.es.index_prefix}-2020.01")

    setup = await ensure_index_template(es, settings)
    assert setup.action == "upgraded"
    assert f"{settings.es.index_prefix}-2020.01" in setup.indices_updated
    mapping = await es.indices.get_mapping(index=f"{settings.es.index_prefix}-2020.01")
    assert "entity_labeled" in mapping[f"{settings.es.index_prefix}-2020.01"]["mappings"]["properties"]

    # A template from a newer newsflow is left alone.
    newer = build_template(settings, setup.analyzer)
    newer["version"] = setup.version + 1
    newer["meta"] = newer.pop("_meta")
    await es.indices.put_index_template(name=template_name(settings), **newer)
    assert (await ensure_index_template(es, settings)).action == "unchanged"
