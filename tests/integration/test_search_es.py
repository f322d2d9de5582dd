"""Search on the real Elasticsearch node: query syntax, filters, story collapse, highlight, the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import SearchError
from pipeline.index import make_client
from pipeline.present import hit_fragment
from pipeline.schemas import EnrichedArticle, Entity
from pipeline.search import search_articles
from pipeline.settings import Settings
from testkit.es_index import indexed_articles

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def _article(n: int, story: str, title: str, body: str, *, source: str = "Example News", lang: str = "en",
             age: timedelta = timedelta(hours=1), entities: tuple[tuple[str, str], ...] = ()) -> EnrichedArticle:
    return EnrichedArticle(
        id=f"art{n}", story_id=story, feed_url="http://feeds.example/rss", url=f"https://example.com/{n}",
        title=title, body=body, summary=body[:80], source=source, source_domain=f"{source.split()[0].lower()}.com",
        language=lang, ingested_at=NOW - age, published_at=NOW - age, text_fingerprint=f"fp{n}",
        word_count=len(body.split()),
        entities=[Entity(name=n_, label=l_) for n_, l_ in entities], entity_names=[n_ for n_, _ in entities],
    )


ARTICLES = [
    _article(1, "nato", "NATO signals compromise as Ukraine fatigue grows",
             "On Tuesday, NATO Secretary-General Mark Rutte arrived in Kiev and addressed the parliament.",
             entities=(("Mark Rutte", "PERSON"), ("Kyiv", "GPE"))),
    _article(2, "nato", "Rutte in Kiev: NATO chief urges peace deal",
             "Mark Rutte told the Verkhovna Rada that a peace agreement must come soon.", source="Other Wire",
             age=timedelta(minutes=30), entities=(("Mark Rutte", "PERSON"),)),
    _article(3, "energy", "Energy truce expires", "The energy truce between the sides expired on February 1.",
             age=timedelta(days=3)),
    _article(4, "fr", "Le sommet de l'OTAN", "Mark Rutte est arrivé à Kiev pour un discours.", lang="fr",
             source="Le Journal", entities=(("Mark Rutte", "PERSON"),)),
]


@pytest.fixture()
async def indexed(stack: Settings, unique: str) -> AsyncIterator[Settings]:
    async with indexed_articles(ARTICLES, unique) as settings:
        yield settings


def _search(settings: Settings, query: str, **options: object) -> list[str]:
    es = make_client(settings.es)
    try:
        return [h.id for h in search_articles(es, settings, query, **options).hits]
    finally:
        es.close()


async def test_search_finds_filters_collapses_and_highlights(indexed: Settings) -> None:
    s = indexed
    # Collapsed on story_id: one hit for the two NATO copies, newest first.
    assert _search(s, "Rutte", language="en") == ["art2"]
    assert sorted(_search(s, "Rutte", language="en", all_copies=True)) == ["art1", "art2"]
    # Phrases, boolean operators and field:value.
    assert _search(s, '"energy truce"') == ["art3"]
    assert _search(s, "Rutte AND NOT Verkhovna", all_copies=True, language="en") == ["art1"]
    assert sorted(_search(s, "source:\"Le Journal\" OR truce", all_copies=True)) == ["art3", "art4"]
    # Filters: since, source (name or domain), entity, language.
    assert _search(s, "*", since=timedelta(days=1), all_copies=True, language="en") == ["art2", "art1"]
    assert _search(s, "*", source="Other Wire") == ["art2"]
    assert _search(s, "*", source="other.com") == ["art2"]
    assert sorted(_search(s, "*", entity="Mark Rutte", all_copies=True)) == ["art1", "art2", "art4"]
    assert _search(s, "*", language="fr") == ["art4"]

    es = make_client(s.es)
    try:
        result = search_articles(es, s, "truce", tags=("[", "]"))
        hit = result.hits[0]
        assert "[truce]" in hit_fragment(hit)
        nato = search_articles(es, s, "parliament OR Rada", language="en").hits[0]
        assert nato.copies == 2
        with pytest.raises(SearchError, match="refused"):
            search_articles(es, s, 'title:"unterminated')
    finally:
        es.close()


async def test_search_cli_text_and_json(indexed: Settings) -> None:
    env = {"NEWSFLOW_ES_INDEX_PREFIX": indexed.es.index_prefix, "NEWSFLOW_ES_ALIAS": indexed.es.alias}
    runner = CliRunner()
    out = runner.invoke(app, ["search", "Rutte", "--lang", "en", "--since", "24h"], env=env)
    assert out.exit_code == 0, out.output
    assert "Rutte in Kiev: NATO chief urges peace deal" in out.output
    assert "Other Wire" in out.output and "2 copies" in out.output and "https://example.com/2" in out.output
    assert "**Rutte**" in out.output

    out = runner.invoke(app, ["search", "Rutte", "--all-copies", "--json", "--sort", "best", "--limit", "5"], env=env)
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    assert {r["id"] for r in rows} == {"art1", "art2", "art4"}
    assert all("<em>" in json.dumps(r["highlight"]) for r in rows)
    assert rows[0]["_score"] >= rows[-1]["_score"]

    out = runner.invoke(app, ["search", "x", "--since", "yesterday"], env=env)
    assert out.exit_code == 1 and "--since" in out.output
