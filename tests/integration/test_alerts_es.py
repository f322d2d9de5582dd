"""Alert matching on the real Elasticsearch node: agreement with `newsflow search`, and the alerts commands."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.alerts.matcher import Matcher
from pipeline.alerts.rules import Channels, Rule, load_rules
from pipeline.cli import app
from pipeline.index import make_async_client, make_client
from pipeline.search import search_articles
from pipeline.settings import Settings
from testkit.alerts_corpus import corpus, generated_queries
from testkit.es_index import indexed_articles

pytestmark = pytest.mark.integration

ARTICLES = corpus(60)


@pytest.fixture()
async def indexed(stack: Settings, unique: str, tmp_path: Path) -> AsyncIterator[Settings]:
    env = {"NEWSFLOW_ALERTS_RULES_FILE": str(tmp_path / "alerts.yaml"), "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
           "NEWSFLOW_PIPELINE_APP_ID": f"t{unique}"}  # `alerts list` reads this app's (absent) alerts-sent changelog
    async with indexed_articles(ARTICLES, unique, env) as settings:
        yield settings


def _rule(n: int, query: str, filters: dict[str, object]) -> Rule:
    return Rule.model_validate({"name": f"r{n}", "query": query, "channels": Channels(log=True),
                                "source": filters.get("source"), "language": filters.get("language"),
                                "entity": filters.get("entity"), "tags": filters.get("tags", [])})


async def test_rules_agree_with_search(indexed: Settings) -> None:
    """>= 200 generated rules give exactly the (rule, article) pairs `newsflow search` gives."""
    rules = [_rule(n, q, f) for n, (q, f) in enumerate(generated_queries(240))]
    es = make_async_client(indexed.es)
    try:
        matcher = Matcher(rules, msearch_chunk=50)
        # Two batches, as the agent sees them.
        got = {(m.rule.name, m.article.id) for m in await matcher.match(es, indexed.es.alias, ARTICLES[:25])}
        got |= {(m.rule.name, m.article.id) for m in await matcher.match(es, indexed.es.alias, ARTICLES[25:])}
    finally:
        await es.close()
    sync = make_client(indexed.es)
    expected: set[tuple[str, str]] = set()
    try:
        for rule in rules:
            hits = search_articles(sync, indexed, rule.query, source=rule.source, entity=rule.entity,
                                   language=rule.language, feed_tags=rule.tags, limit=1000, all_copies=True).hits
            expected |= {(rule.name, h.id) for h in hits}
    finally:
        sync.close()
    assert got == expected
    # The test means something: many rules match, many do not, and the presearcher narrowed most.
    matched_rules = {r for r, _ in expected}
    assert len(matched_rules) > 100 and len(expected) > 500
    assert len(rules) - len(matched_rules) > 10
    assert matcher.always < len(rules) / 2
    # Both ways of deciding are held to search: rules the presearcher decides alone and rules Elasticsearch checks.
    alone = {r.name for r, flag in zip(rules, matcher.decided_alone, strict=True) if flag}
    assert len({r for r in matched_rules if r in alone}) > 40 and len(matched_rules - alone) > 40


async def test_stemming_and_phrases_follow_the_index(indexed: Settings) -> None:
    """Whatever analyzer the node has (english stems, standard does not), the matcher says what search says."""
    rules = [_rule(0, "negotiate", {}), _rule(1, '"Mark Rutte"', {}), _rule(2, "runs", {})]
    es = make_async_client(indexed.es)
    try:
        matcher = Matcher(rules, msearch_chunk=indexed.alerts.msearch_chunk)
        got = {(m.rule.name, m.article.id) for m in await matcher.match(es, indexed.es.alias, ARTICLES)}
    finally:
        await es.close()
    sync = make_client(indexed.es)
    try:
        for rule in rules:
            ids = {h.id for h in search_articles(sync, indexed, rule.query, limit=1000, all_copies=True).hits}
            assert {a for r, a in got if r == rule.name} == ids
            assert ids  # each of these words occurs in the corpus
    finally:
        sync.close()


def _invoke(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"NEWSFLOW_ES_INDEX_PREFIX": settings.es.index_prefix, "NEWSFLOW_ES_ALIAS": settings.es.alias,
           "NEWSFLOW_ALERTS_RULES_FILE": settings.alerts.rules_file, "NEWSFLOW_DATA_DIR": str(settings.data_dir),
           "NEWSFLOW_PIPELINE_APP_ID": settings.pipeline.app_id}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_alerts_commands(indexed: Settings, tmp_path: Path) -> None:
    path = Path(indexed.alerts.rules_file)
    # A query that does not parse is refused with the parser's message and position, and not stored.
    code, _out, err = _invoke(indexed, tmp_path, "alerts", "add", "broken", "--query", "energy AND (truce")
    assert code == 2, err
    assert "Cannot parse" in err and "column" in err
    assert not path.exists() or not load_rules(path)

    code, out, err = _invoke(indexed, tmp_path, "alerts", "add", "energy", "--query", "energy truce",
                             "--webhook", "http://127.0.0.1:9/hook", "--secret", "s3cret", "--email", "a@example.org",
                             "--topic")
    assert code == 0, err
    code, out, err = _invoke(indexed, tmp_path, "alerts", "add", "daily", "--query", "drought OR flood",
                             "--digest", "1h", "--source", "Reuters")
    assert code == 0, err
    code, _out, err = _invoke(indexed, tmp_path, "alerts", "add", "energy", "--query", "x")
    assert code == 2 and "exists" in err
    rules = {r.name: r for r in load_rules(path)}
    assert rules["energy"].channels.names() == ["webhook", "email", "topic"]
    assert rules["energy"].secret == "s3cret"
    assert rules["daily"].mode == "digest" and rules["daily"].channels.log and rules["daily"].source == "Reuters"

    code, out, err = _invoke(indexed, tmp_path, "alerts", "list", "--json")
    assert code == 0, err
    listed = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in listed] == ["energy", "daily"]
    assert all("secret" not in r for r in listed) and listed[0]["has_secret"] and listed[0]["matches"] == 0

    # test NAME == test --query == newsflow search (one hit per story).
    sync = make_client(indexed.es)
    try:
        expected = [h.id for h in search_articles(sync, indexed, "energy truce", limit=1000).hits]
    finally:
        sync.close()
    assert expected
    for args in (("alerts", "test", "energy", "--json", "-n", "1000"),
                 ("alerts", "test", "--query", "energy truce", "--json", "-n", "1000", "--since", "7d")):
        code, out, err = _invoke(indexed, tmp_path, *args)
        assert code == 0, err
        assert [json.loads(line)["_id"] for line in out.splitlines()] == expected

    code, out, err = _invoke(indexed, tmp_path, "alerts", "remove", "energy")
    assert code == 0, err
    assert [r.name for r in load_rules(path)] == ["daily"]
    code, _out, err = _invoke(indexed, tmp_path, "alerts", "remove", "energy")
    assert code == 1 and "no rule" in err
