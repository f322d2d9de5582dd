"""Enrich (pipeline.enrich) with the real spaCy small model on the seed page: the acceptance entities."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.canonical import text_fingerprint
from pipeline.clean import clean_article
from pipeline.enrich import enrich_articles, enrich_options, lead, load_model, ner_units, sentences_with_names
from pipeline.errors import EnrichFailed
from pipeline.schemas import DedupedArticle, EnrichedArticle, RawItem
from pipeline.settings import PipelineSettings

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
ACCEPTANCE = [
    ("NATO", "ORG"), ("Mark Rutte", "PERSON"), ("Dmitry Peskov", "PERSON"), ("Vitaly Kim", "PERSON"),
    ("Donald Trump", "PERSON"), ("Kiev", "GPE"), ("Abu Dhabi", "GPE"), ("Ukraine", "GPE"), ("Russia", "GPE"),
]


def _deduped(page: str) -> DedupedArticle:
    html = (PAGES / page).read_text(encoding="utf-8")
    link = f"https://news.example/{page}"
    clean = clean_article(RawItem(feed_url="https://feeds.example/rss", link=link, canonical_link=link,
                                  content=html, content_fetched=True), min_words=PipelineSettings().min_words)
    return DedupedArticle(**clean.model_dump(), id=page, story_id=page)


@pytest.fixture(scope="module")
def enriched() -> list[EnrichedArticle]:
    load_model()  # once for the module (~1-2 s)
    return enrich_articles([_deduped("seed-rt.html"), _deduped("unrelated-same-topic.html")])


def test_seed_entities_include_the_acceptance_set(enriched):
    seed = enriched[0]
    got = {(e.name, e.label) for e in seed.entities}
    assert set(ACCEPTANCE) <= got, set(ACCEPTANCE) - got
    assert not any(e.name == "Kiev" and e.label == "PERSON" for e in seed.entities)
    assert not any(e.name in {"Rutte", "Peskov", "Kim", "Trump", "Kyiv"} for e in seed.entities)
    by_name = {e.name: e for e in seed.entities}
    assert by_name["Mark Rutte"].count >= 8  # "Rutte", "Rutte’s" ... all counted under the full name
    assert len(by_name) == len(seed.entities)  # one entity per name


def test_seed_entity_names_and_variants(enriched):
    seed = enriched[0]
    assert {"Kiev", "Kyiv", "NATO", "Mark Rutte"} <= set(seed.entity_names)
    assert all(e.label not in {"DATE", "TIME", "PERCENT", "CARDINAL", "MONEY"} for e in seed.entities)


def test_keywords_and_lead(enriched):
    seed = enriched[0]
    assert 5 <= len(seed.keywords) <= 10
    assert "security guarantees" in seed.keywords
    assert all(k == k.lower() for k in seed.keywords)
    assert seed.summary and seed.summary.startswith("On Tuesday, NATO Secretary-General Mark Rutte arrived in Kiev")


def test_batch_keeps_order_and_identity(enriched):
    assert [a.id for a in enriched] == ["seed-rt.html", "unrelated-same-topic.html"]
    other = {e.name for e in enriched[1].entities}
    assert "Abu Dhabi" in other and "Mark Rutte" not in other


def test_ner_budget_keeps_the_entities_and_counts_the_whole_body():
    article = _deduped("seed-rt.html")
    [short] = enrich_articles([article], ner_max_words=150)
    names = {e.name: e.count for e in short.entities}
    assert names["Mark Rutte"] >= 8  # found in the lead, counted over the whole text
    # Names first met after the budget (Peskov, Kim, Trump, Abu Dhabi's second mention) still come from pass 2.
    assert set(ACCEPTANCE) <= {(e.name, e.label) for e in short.entities}


@pytest.mark.parametrize(
    ("paragraph", "expected"),
    [
        ("The vote was close. Rutte spoke after it. it ended late.", "Rutte spoke after it. "),
        ("NATO met. The talks ran late.", "NATO met. "),
        ("Moscow, however, disagreed. He left.", "Moscow, however, disagreed. "),
        ("US officials said so. It was late.", "US officials said so. "),
        ("“Rutte’s plan,” he said. They agreed.", "“Rutte’s plan,” he said. "),
        ("He met the iPhone team. They agreed.", "He met the iPhone team. "),
        ("Mark Rutte arrived in Kiev. Zelensky met him.", "Mark Rutte arrived in Kiev. Zelensky met him."),
        ("the plan was approved. it ended late.", ""),
        ("जिला प्रशासन ने योजना बनाई है। 전국에 한파 특보가 이어지면서.", ""),
    ],
    ids=["drops-stop-word-start", "keeps-acronym-start", "keeps-name-start", "us-is-not-a-stop-word",
         "possessive-after-quote", "inner-capital", "unchanged-when-all-kept", "all-lower-case", "caseless-scripts"],
)
def test_sentences_with_names(paragraph, expected):
    assert sentences_with_names(paragraph) == expected


def test_ner_units_drop_sentences_without_names_but_the_budget_counts_them():
    now = datetime.now(UTC)
    body = "The vote was close and it ran late into the night.\nRutte spoke after it.\nPeskov replied."
    article = DedupedArticle(feed_url="f", title="Vote", body=body, ingested_at=now,
                             text_fingerprint=text_fingerprint(body), id="x", story_id="x")
    assert ner_units(article, max_words=0) == (["Vote", "Rutte spoke after it.", "Peskov replied."], [])
    # 11 words of the first paragraph fill a 10-word budget even though the model does not read them.
    assert ner_units(article, max_words=10) == (["Vote"], ["Rutte spoke after it.", "Peskov replied."])


def test_usable_feed_summary_is_kept():
    now = datetime.now(UTC)
    body = "First sentence of the body is here. Second one follows it."
    summary = "A standfirst written by the editor that says what the story is about in a line."
    article = DedupedArticle(feed_url="f", title="T", body=body, summary=summary, ingested_at=now,
                             text_fingerprint=text_fingerprint(body), id="x", story_id="x")
    [out] = enrich_articles([article])
    assert out.summary == summary
    [out] = enrich_articles([article.model_copy(update={"summary": "Read more"})])
    assert out.summary == body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Short one. Then a second sentence. And a third.", "Short one. Then a second sentence."),
        ("x " * 100, ("x " * 60).strip() + "…"),
        ("Caption here\nThe real first paragraph starts here and runs on for a while. More.",
         "The real first paragraph starts here and runs on for a while. More."),
    ],
    ids=["two-sentences", "capped", "skips-short-line"],
)
def test_lead(body, expected):
    assert lead(body) == expected


def test_unknown_model_is_a_typed_error():
    with pytest.raises(EnrichFailed, match="cannot be loaded"):
        load_model("no_such_model_xyz")


def test_arguments_are_picklable():
    # The agents send this call to a process pool.
    pickle.dumps((enrich_articles, [_deduped("unrelated-same-topic.html")]))


def test_cli_enrich_prints_entities(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    path = tmp_path / "article.txt"
    path.write_text("Rutte visits Kyiv\nNATO Secretary-General Mark Rutte arrived in Kyiv on Tuesday, and Rutte "
                    "addressed the Ukrainian parliament about security guarantees for Ukraine.\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["enrich", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    names = {e["name"] for e in out["entities"]}
    assert {"Mark Rutte", "Kiev"} <= names and "Rutte" not in names
    assert "Kyiv" in out["entity_names"]


@pytest.mark.parametrize(
    "body",
    ["", "…", "🙂 🙂 🙂", "<script>alert(1)</script> &amp; \u200b\u0000", "word " * 60_000],
    ids=["empty", "ellipsis", "emoji", "markup-and-controls", "huge"],
)
def test_odd_bodies_do_not_crash(body):
    now = datetime.now(UTC)
    article = DedupedArticle(feed_url="f", title="Odd input", body=body, ingested_at=now,
                             text_fingerprint=text_fingerprint(body), id="odd", story_id="odd")
    [out] = enrich_articles([article])
    assert out.id == "odd"
    assert isinstance(out.entities, list) and isinstance(out.keywords, list)


def test_enrich_options_are_the_configured_pipeline_values() -> None:
    from pipeline.settings import load_settings

    settings = load_settings(environ={"NEWSFLOW_PIPELINE_NLP_BATCH_SIZE": "7", "NEWSFLOW_PIPELINE_NER_MAX_WORDS": "90",
                                      "NEWSFLOW_PIPELINE_NER_CACHE_PARAGRAPHS": "0"})
    p = settings.pipeline
    assert enrich_options(settings) == {"model": p.spacy_model, "batch_size": 7, "ner_max_words": 90,
                                        "variants_file": str(settings.path(p.entity_variants_file)), "cache_size": 0}


def test_the_model_is_loaded_afresh_once_its_vocabulary_has_grown(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived pool process meets new names and numbers in every article, and spaCy keeps each in the model's
    vocabulary: past VOCAB_GROWTH_LIMIT new strings the model is dropped, and the next batch loads it afresh."""
    import pipeline.enrich as enrich

    now = datetime.now(UTC)

    def articles(tag: str) -> list[DedupedArticle]:
        return [DedupedArticle(feed_url="f", title=f"Zorblat{tag}{n} visits Quexville{tag}{n}",
                               body=f"Minister Zorblat{tag}{n} met Vrenna Oxlade{tag}{n} in Quexville{tag}{n}. " * 5,
                               ingested_at=now, text_fingerprint=str(n), id=str(n), story_id=str(n))
                for n in range(20)]

    first = load_model()
    fresh = len(first.vocab.strings)
    enrich_articles(articles("a"), cache_size=0)
    assert load_model() is first and len(first.vocab.strings) > fresh  # grown, under the default limit

    monkeypatch.setattr(enrich, "VOCAB_GROWTH_LIMIT", 10)
    out = enrich_articles(articles("b"), cache_size=0)
    assert any(e.name.startswith("Zorblatb") for a in out for e in a.entities)  # the batch itself is complete
    second = load_model()
    assert second is not first
    assert len(second.vocab.strings) < len(first.vocab.strings)
