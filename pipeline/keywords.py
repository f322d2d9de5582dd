"""Keyphrases of one article from its plain text: frequent common-noun phrases, no tagger, no model, no network.

A RAKE-style statistical method (Rose et al., "Automatic keyword extraction from individual documents", 2010):
candidates are the maximal runs of lower-case words between delimiters, and a delimiter is punctuation, a stop
word (spaCy's English list), a capitalised word (proper nouns are the entities' job), a number, or a word that is
almost never part of a noun phrase in news (reporting and common verbs, "-ed" past forms, "-ly" adverbs). A run
keeps at most four words, and loses generic words at its start. A phrase scores its
frequency, weighted up for multi-word phrases (they say more: "security guarantees" beats "guarantees"), plus a
little for how often its words occur across all candidates. Plural and singular forms are counted together.

Why not the tagger or YAKE: the part-of-speech tagger (with its own tok2vec) cost ~40 % of the enrich stage and
was only there for keywords; the ``yake`` package (0.7.3) took ~110 ms per 900-word article, more than the whole
stage's budget. This costs ~1-2 ms (bench/stage_enrich.py, docs/stages.md).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from spacy.lang.en.stop_words import STOP_WORDS

__all__ = ["extract_keywords"]

# Words too generic in news to describe an article on their own.
_GENERIC = frozenset(
    """people time year years day days week weeks month months thing things way lot part number percent
    today yesterday tomorrow morning evening night statement report reports official officials source sources
    news article story comment comments interview reporters other many much more most such same own last next
    first second third new recent several few certain various whole possible former latter other others
    side sides point points case cases kind sort end beginning fact term terms""".split()  # noqa: SIM905
)
# Verbs common in news prose that the stop-word list lacks; they end a phrase as punctuation does.
_VERBS = frozenset(
    """said says say told tell tells added adds announced announces asked asks according warned warns claimed
    claims called calls noted notes stated states reported wrote writes insisted insists argued argues urged
    urges expected expects believed believes declined declines refused refuses confirmed confirms denied denies
    described describes agreed agrees allowed allows appeared appears became become becomes began begins came
    comes continued continues did does done found finds gave gives got gets held holds included includes kept
    keeps know knows knew left made makes meet meets met need needs paid pays plans planned put puts remain
    remains remained saw see sees seem seems seemed set sets showed shows took takes want wants went will would
    could should might must can may rise rises rose fall falls fell grow grows grew cover covers""".split()  # noqa: SIM905
)
_TOKEN = re.compile(r"[^\W\d_](?:[\w'’-]*\w)?|\S")
_WORD = re.compile(r"[^\W\d_][\w'’-]*\Z")
# "-ed" words are verbs or participles in news prose far more often than parts of a noun phrase ("discussed",
# "approved"); "-eed" words ("need", "speed") are not past forms.
_PAST = re.compile(r"[^e]ed\Z")


def _delimits(word: str) -> bool:
    lower = word.lower()
    return (
        not _WORD.match(word)
        or word != lower  # capitalised: a name, or a sentence start
        or lower in STOP_WORDS
        or lower in _VERBS
        or lower.endswith("ly")
        or _PAST.search(lower) is not None
        or len(word) < 2
    )


def _close(run: list[str]) -> tuple[str, ...] | None:
    while run and run[0] in _GENERIC:
        run.pop(0)
    if not run or len(run) > 4 or (len(run) == 1 and run[0] in _GENERIC):
        return None
    return tuple(run)


def _phrases(text: str) -> Iterator[tuple[str, ...]]:
    run: list[str] = []
    for token in _TOKEN.findall(text):
        if _delimits(token):
            phrase = _close(run)
            if phrase:
                yield phrase
            run = []
        else:
            run.append(token)
    phrase = _close(run)
    if phrase:
        yield phrase


def _singular(phrase: tuple[str, ...]) -> tuple[str, ...]:
    last = phrase[-1]
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        last = last[:-1]
    return (*phrase[:-1], last)


def extract_keywords(text: str, *, limit: int = 8, exclude: Iterable[str] = ()) -> list[str]:
    """The ``limit`` best keyphrases of ``text``, best first, lower-case.

    Args:
        text: the article's plain text (title, subtitle, body).
        limit: at most this many phrases.
        exclude: names not to repeat as keywords (the article's entities), compared lower-case.

    Example::

        >>> extract_keywords("Security guarantees again. The security guarantees were discussed.", limit=2)
        ['security guarantees']
    """
    excluded = {e.lower() for e in exclude}
    counts: Counter[tuple[str, ...]] = Counter()
    surface: dict[tuple[str, ...], Counter[tuple[str, ...]]] = {}
    for phrase in _phrases(text):
        key = _singular(phrase)
        counts[key] += 1
        surface.setdefault(key, Counter())[phrase] += 1
    words: Counter[str] = Counter(w for key, n in counts.items() for w in key for _ in range(n))
    scored = []
    for key, n in counts.items():
        phrase_text = " ".join(surface[key].most_common(1)[0][0])
        if phrase_text in excluded:
            continue
        score = n * (1 + 0.6 * (len(key) - 1)) + 0.1 * sum(words[w] for w in key) / len(key)
        scored.append((score, phrase_text))
    scored.sort(key=lambda s: (-s[0], s[1]))
    out: list[str] = []
    for _, phrase_text in scored:
        # A single word already inside a chosen phrase adds little.
        if " " not in phrase_text and any(phrase_text in chosen.split(" ") for chosen in out):
            continue
        out.append(phrase_text)
        if len(out) == limit:
            break
    return out
