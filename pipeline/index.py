"""The Elasticsearch side of newsflow's storage: index template, monthly indices, read alias, versioned upgrade.

Layout: one composable template ``{prefix}-template`` (body in ``config/index-template.json``) matches
``{prefix}-*``; documents go to monthly indices ``{prefix}-YYYY.MM`` that carry the read alias ``{alias}``
(the local node has no data streams or ILM, so "rolling over" is simply a new month's name).

The text analyzer is chosen from what the server has: ``english`` (stemming) on full distributions,
``standard`` on nodes without the analysis-common module (the local integration-test node). It is
visible as the ``newsflow_text`` analyzer in each index's settings and as ``_meta.text_analyzer``.

Upgrades: the template carries ``version``. At start (:func:`ensure_index_template`) a missing or older
template, or one built for another analyzer, is replaced; existing indices then get the new mapping
(additive changes only: Elasticsearch cannot change a field's type in place, so such a change applies
from the next new index) and the current ``refresh_interval``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
    TransportError,
)
from elasticsearch.serializer import OrjsonSerializer

from pipeline.errors import ElasticUnavailable, SinkError
from pipeline.logs import get_logger
from pipeline.settings import ElasticSettings, Settings

T = TypeVar("T")

__all__ = [
    "TEMPLATE_FILE",
    "IndexSetup",
    "api_error_reason",
    "build_template",
    "detect_text_analyzer",
    "ensure_index_template",
    "index_name",
    "index_status",
    "make_async_client",
    "make_client",
    "run_with_client",
    "template_name",
    "template_version",
]

log = get_logger(__name__)

TEMPLATE_FILE = "config/index-template.json"
# Tried in order; the first the server knows wins.
_ANALYZERS = ("english", "standard")


def template_name(settings: Settings) -> str:
    return f"{settings.es.index_prefix}-template"


def index_name(settings: Settings, when: datetime) -> str:
    """The monthly index a document routed by ``when`` belongs to: ``{prefix}-YYYY.MM`` (UTC)."""
    when = when.astimezone(UTC)
    return f"{settings.es.index_prefix}-{when.year:04d}.{when.month:02d}"


def _raw_template(settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(settings.path(TEMPLATE_FILE).read_text(encoding="utf-8"))
    body.pop("_comment", None)
    return body


def template_version(settings: Settings) -> int:
    """The ``version`` of the template body newsflow ships."""
    return int(_raw_template(settings)["version"])


def build_template(settings: Settings, analyzer: str) -> dict[str, Any]:
    """The put-index-template body for these settings and text analyzer (placeholders filled)."""
    text = json.dumps(_raw_template(settings))
    for key, value in {
        "__INDEX_PREFIX__": settings.es.index_prefix,
        "__ALIAS__": settings.es.alias,
        "__REFRESH_INTERVAL__": settings.sink.refresh_interval,
        "__TEXT_ANALYZER__": analyzer,
    }.items():
        text = text.replace(key, value)
    body: dict[str, Any] = json.loads(text)
    return body


def _client_kwargs(es: ElasticSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "hosts": [es.url],
        "request_timeout": es.request_timeout_s,
        "verify_certs": es.verify_certs,
        # The sink retries with its own backoff (forever, logging); the transport only gets one quick retry.
        "max_retries": 1,
        "retry_on_timeout": True,
        # orjson: the alerts agent decodes the term vectors of every indexed article (a third of its time with
        # the standard json module under broad rules), the sink every bulk response.
        "serializer": OrjsonSerializer(),
    }
    if es.ca_certs:
        kwargs["ca_certs"] = es.ca_certs
    if es.api_key is not None:
        kwargs["api_key"] = es.api_key.get_secret_value()
    elif es.username:
        kwargs["basic_auth"] = (es.username, es.password.get_secret_value() if es.password else "")
    return kwargs


def make_async_client(es: ElasticSettings) -> AsyncElasticsearch:
    return AsyncElasticsearch(**_client_kwargs(es))


def make_client(es: ElasticSettings) -> Elasticsearch:
    return Elasticsearch(**_client_kwargs(es))


def run_with_client(es: ElasticSettings, fn: Callable[[AsyncElasticsearch], Awaitable[T]]) -> T:
    """``fn(client)`` on a fresh async client in its own event loop, the client closed after (for commands)."""

    async def go() -> T:
        client = make_async_client(es)
        try:
            return await fn(client)
        finally:
            await client.close()

    return asyncio.run(go())


def api_error_reason(exc: ApiError) -> str:
    """The root cause of a refused request (a bad query: the parser's message; a 401: who was refused)."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error", {}) if isinstance(info.get("error"), dict) else {}
    for failure in error.get("failed_shards", []) or []:
        reason = failure.get("reason", {})
        cause = reason.get("caused_by") or reason
        if cause.get("reason"):
            return str(cause["reason"])
    causes = error.get("root_cause") or []
    if causes and causes[0].get("reason"):
        return str(causes[0]["reason"])
    return str(exc.message)


def _translate(exc: Exception, what: str) -> SinkError:
    if isinstance(exc, ApiError) and exc.meta.status < 500 and exc.meta.status != 429:
        return SinkError(f"{what}: Elasticsearch answered {exc.meta.status}: {exc.message}: {api_error_reason(exc)}")
    return ElasticUnavailable(f"{what}: Elasticsearch unavailable: {exc}")


async def detect_text_analyzer(es: AsyncElasticsearch) -> str:
    """``english`` when the server has it (full distributions), else ``standard``."""
    for analyzer in _ANALYZERS:
        try:
            await es.indices.analyze(analyzer=analyzer, text="running news")
        except BadRequestError:  # "failed to find global analyzer [english]"
            continue
        return analyzer
    return "standard"


@dataclass
class IndexSetup:
    """What :func:`ensure_index_template` found and did."""

    template: str
    version: int
    analyzer: str
    action: str  # created, upgraded, unchanged
    current_index: str
    indices_updated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def ensure_index_template(es: AsyncElasticsearch, settings: Settings) -> IndexSetup:
    """Create or upgrade the template, then make sure this month's index exists behind the alias.

    Steps: 1. detect the analyzer; 2. compare with the installed template (version, analyzer);
    3. put the template when missing/older/other analyzer; 4. on upgrade push the mapping and
    refresh interval to existing indices; 5. create this month's index if missing (so search
    and Kibana work before the first document).

    Raises:
        ElasticUnavailable: the server cannot be reached (callers retry).
        SinkError: the server refused the template (a bug or an incompatible server).
    """
    name = template_name(settings)
    try:
        # 1.
        analyzer = await detect_text_analyzer(es)
        body = build_template(settings, analyzer)
        version = int(body["version"])
        # 2.
        installed: dict[str, Any] | None = None
        try:
            got = await es.indices.get_index_template(name=name)
            installed = got["index_templates"][0]["index_template"] if got["index_templates"] else None
        except NotFoundError:
            installed = None
        installed_version = int(installed.get("version") or 0) if installed else None
        installed_analyzer = (
            installed.get("template", {}).get("mappings", {}).get("_meta", {}).get("text_analyzer")
            if installed else None
        )
        if installed is None:
            action = "created"
        elif installed_version is not None and installed_version > version:
            # A newer newsflow installed it: never downgrade a shared template.
            action = "unchanged"
            body = installed
        elif installed_version != version or installed_analyzer != analyzer:
            action = "upgraded"
        else:
            action = "unchanged"
        # 3.
        if action != "unchanged":
            await es.indices.put_index_template(name=name, **_template_kwargs(body))
            log.info("index template put", template=name, version=version, analyzer=analyzer, action=action)
        setup = IndexSetup(template=name, version=version, analyzer=analyzer, action=action,
                           current_index=index_name(settings, datetime.now(UTC)))
        # 4.
        if action == "upgraded":
            await _upgrade_indices(es, settings, body, setup)
        # 5.
        await ensure_index(es, settings, setup.current_index)
        return setup
    except (ApiError, TransportError) as exc:
        raise _translate(exc, f"index template {name}") from exc


def _template_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("index_patterns", "template", "priority", "version", "_meta", "composed_of")
    out = {k: copy.deepcopy(body[k]) for k in keys if k in body}
    if "_meta" in out:
        out["meta"] = out.pop("_meta")
    return out


async def ensure_index(es: AsyncElasticsearch, settings: Settings, index: str) -> bool:
    """Create ``index`` (the template supplies mapping and alias); True when this call created it."""
    try:
        await es.indices.create(index=index)
    except BadRequestError as exc:
        if exc.error == "resource_already_exists_exception":
            return False
        # After `newsflow reindex` the monthly name is an alias of the rebuilt index (pipeline/reindex.py).
        if exc.error == "invalid_index_name_exception" and await es.indices.exists_alias(name=index):
            return False
        raise
    log.info("index created", index=index, alias=settings.es.alias)
    return True


async def _upgrade_indices(es: AsyncElasticsearch, settings: Settings, body: dict[str, Any],
                           setup: IndexSetup) -> None:
    pattern = f"{settings.es.index_prefix}-*"
    try:
        existing = await es.indices.get(index=pattern, expand_wildcards="open")
    except NotFoundError:
        return
    mappings = copy.deepcopy(body["template"]["mappings"])
    for index in sorted(existing):
        try:
            await es.indices.put_mapping(index=index, **{("meta" if k == "_meta" else k): v
                                                         for k, v in mappings.items()})
            await es.indices.put_settings(index=index,
                                          settings={"index": {"refresh_interval": settings.sink.refresh_interval}})
            await es.indices.put_alias(index=index, name=settings.es.alias)
            setup.indices_updated.append(index)
        except BadRequestError as exc:
            # A type change cannot be applied in place; it takes effect from the next monthly index.
            note = f"{index}: mapping not updated in place ({exc.message}); applies from the next new index"
            setup.notes.append(note)
            log.warning("index mapping not upgraded", index=index, error=str(exc.message))


async def index_status(es: AsyncElasticsearch, settings: Settings) -> dict[str, Any]:
    """The template (version, analyzer), the indices behind the alias with doc counts, the cluster health."""
    name = template_name(settings)
    out: dict[str, Any] = {"template": name, "shipped_version": template_version(settings), "alias": settings.es.alias}
    try:
        health = await es.cluster.health()
        out["cluster"] = {"status": health["status"], "nodes": health["number_of_nodes"]}
        try:
            got = await es.indices.get_index_template(name=name)
            tpl = got["index_templates"][0]["index_template"]
            out["installed_version"] = tpl.get("version")
            out["text_analyzer"] = tpl.get("template", {}).get("mappings", {}).get("_meta", {}).get("text_analyzer")
        except NotFoundError:
            out["installed_version"] = None
        indices: list[dict[str, Any]] = []
        try:
            rows = await es.cat.indices(index=settings.es.alias, format="json", h="index,docs.count,store.size,health")
            for row in sorted(rows.body, key=lambda r: r["index"]):
                indices.append({"index": row["index"], "docs": int(row.get("docs.count") or 0),
                                "size": row.get("store.size"), "health": row.get("health")})
        except NotFoundError:
            pass
        out["indices"] = indices
        out["documents"] = sum(i["docs"] for i in indices)
    except (ApiError, TransportError) as exc:
        raise _translate(exc, "index status") from exc
    return out
