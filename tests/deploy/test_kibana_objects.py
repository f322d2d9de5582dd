"""deploy/kibana/newsflow.ndjson: every line a saved object, every reference resolved, every field in the real mapping.

The mapping is read from the real Elasticsearch node after creating the index template there (with a unique
prefix), so a renamed or retyped field in config/index-template.json breaks this test, not the dashboard.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipeline.index import ensure_index_template, make_async_client
from pipeline.settings import PROJECT_ROOT, Settings, load_settings

NDJSON = PROJECT_ROOT / "deploy" / "kibana" / "newsflow.ndjson"
KINDS = {"index-pattern", "search", "visualization", "dashboard"}


def _objects() -> list[dict[str, Any]]:
    lines = [line for line in NDJSON.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def _by_key() -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["type"], o["id"]): o for o in _objects()}


def test_every_line_is_a_saved_object_with_unique_id() -> None:
    objs = _objects()
    assert {o["type"] for o in objs} == KINDS
    assert len({(o["type"], o["id"]) for o in objs}) == len(objs)
    for o in objs:
        assert o["attributes"]["title"], o["id"]
        assert isinstance(o["references"], list)


def test_every_reference_resolves() -> None:
    objs = _by_key()
    for obj in objs.values():
        names = {ref["name"] for ref in obj["references"]}
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in objs, f"{obj['id']}: dangling reference {ref}"
        meta = obj["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if meta:
            source = json.loads(meta)
            if "indexRefName" in source:
                assert source["indexRefName"] in names, obj["id"]
        if obj["type"] == "dashboard":
            for panel in json.loads(obj["attributes"]["panelsJSON"]):
                assert panel["panelRefName"] in names, panel
                ref = next(r for r in obj["references"] if r["name"] == panel["panelRefName"])
                assert ref["type"] == panel["type"]
        if obj["type"] == "visualization":
            json.loads(obj["attributes"]["visState"])


def test_dashboard_has_the_four_panels() -> None:
    dash = _by_key()[("dashboard", "newsflow-overview")]
    targets = {r["id"] for r in dash["references"]}
    assert {"newsflow-articles-over-time", "newsflow-top-sources", "newsflow-top-entities",
            "newsflow-latest-articles"} <= targets
    pattern = _by_key()[("index-pattern", "newsflow-articles")]["attributes"]
    assert pattern["title"] == "news*" and pattern["timeFieldName"] == "published_at"


def _field_uses() -> list[tuple[str, str, str]]:
    """(object id, field, required kind) for every field an object names: date, aggregatable or any."""
    uses: list[tuple[str, str, str]] = []
    for obj in _objects():
        attrs = obj["attributes"]
        if obj["type"] == "index-pattern":
            uses.append((obj["id"], attrs["timeFieldName"], "date"))
        elif obj["type"] == "search":
            uses += [(obj["id"], column, "any") for column in attrs["columns"]]
            uses += [(obj["id"], field, "sortable") for field, _ in attrs["sort"]]
        elif obj["type"] == "visualization":
            for agg in json.loads(attrs["visState"])["aggs"]:
                field = agg.get("params", {}).get("field")
                if field:
                    uses.append((obj["id"], field, "date" if agg["type"] == "date_histogram" else "aggregatable"))
    return uses


def _flatten(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out.update(_flatten(spec["properties"], f"{path}."))
        else:
            out[path] = spec.get("type", "object")
        for sub, sub_spec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = sub_spec["type"]
    return out


@pytest.fixture()
async def real_mapping(stack: Settings, unique: str) -> AsyncIterator[dict[str, str]]:
    settings = load_settings(environ={"NEWSFLOW_ES_INDEX_PREFIX": f"tk-{unique}", "NEWSFLOW_ES_ALIAS": f"tka-{unique}"})
    es = make_async_client(settings.es)
    try:
        setup = await ensure_index_template(es, settings)
        mapping = await es.indices.get_mapping(index=setup.current_index)
        yield _flatten(mapping[setup.current_index]["mappings"]["properties"])
    finally:
        for index in await es.indices.get(index=f"tk-{unique}-*"):
            await es.indices.delete(index=index)
        await es.indices.delete_index_template(name=f"tk-{unique}-template")
        await es.close()


@pytest.mark.integration
def test_every_field_exists_in_the_real_mapping_with_a_fitting_type(real_mapping: dict[str, str]) -> None:
    fitting = {
        "date": {"date", "date_nanos"},
        "aggregatable": {"keyword", "integer", "long", "date", "boolean", "short", "float", "double"},
        "sortable": {"keyword", "integer", "long", "date", "float", "double"},
    }
    uses = _field_uses()
    assert len(uses) >= 8
    for obj_id, field, need in uses:
        assert field in real_mapping, f"{obj_id}: field {field!r} is not in the index mapping"
        if need != "any":
            assert real_mapping[field] in fitting[need], f"{obj_id}: {field} is {real_mapping[field]}, needs {need}"
