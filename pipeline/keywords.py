"""Keyphrases of one article from part-of-speech tags: frequent adjective+noun phrases, no network, no model of its own.

Candidates are maximal runs of adjectives/nouns ending in a common noun (Penn tags JJ*, NN, NNS; proper nouns
are the entities' job). A phrase scores its frequency, weighted up for multi-word phrases (they say more:
"security guarantees" beats "guarantees"), plus a little for how often its words occur across all candidates.
Plural and singular forms of a phrase are counted together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

__all__ = ["Token", "extract_keywords"]

_ADJ = frozenset({"JJ", "JJR", "JJS"})
_NOUN = frozenset({"NN", "NNS"})
# Words too generic in news to describe an article on their own.
_GENERIC = frozenset(
    """people time year years day days week weeks month months thing things way lot part number percent
    today yesterday tomorrow morning evening night statement report reports official officials source sources
    news article story comment comments interview reporters other many much more most such same own last next
    first second third new recent several few certain various whole possible former latter other others
    side sides point points case cases kind sort end beginning fact term terms""".split()  # noqa: SIM905
)


class Token(Protocol):
    """What keyword extraction reads from a spaCy token."""

    @property
    def text(self) -> str: ...
    @property
    def tag_(self) -> str: ...
    @property
    def is_stop(self) -> bool: ...
    @property
    def is_alpha(self) -> bool: ...


def _phrases(tokens: Iterable[Token]) -> Iterable[tuple[str, ...]]:
    run: list[Token] = []
    for tok in [*tokens, None]:
        ok = tok is not None and tok.is_alpha and (tok.tag_ in _ADJ or tok.tag_ in _NOUN) and len(tok.text) > 1
        if ok:
            run.append(tok)  # type: ignore[arg-type]
            continue
        # Close the run: trim to end on a noun and drop stop/generic words at the start.
        while run and run[-1].tag_ not in _NOUN:
            run.pop()
        while run and (run[0].is_stop or run[0].text.lower() in _GENERIC):
            run.pop(0)
        if run and len(run) <= 4:
            words = tuple(t.text.lower() for t in run)
            if not (len(words) == 1 and (words[0] in _GENERIC or run[0].is_stop)):
                yield words
        run = []


def _singular(phrase: tuple[str, ...]) -> tuple[str, ...]:
    last = phrase[-1]
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        last = last[:-1]
    return (*phrase[:-1], last)


def extract_keywords(tokens: Iterable[Token], *, limit: int = 8, exclude: Iterable[str] = ()) -> list[str]:
    """The ``limit`` best keyphrases of a tagged text, best first, lower-case.

    Args:
        tokens: tagged tokens (a spaCy ``Doc`` works).
        limit: at most this many phrases.
        exclude: names not to repeat as keywords (the article's entities), compared lower-case.
    """
    excluded = {e.lower() for e in exclude}
    counts: Counter[tuple[str, ...]] = Counter()
    surface: dict[tuple[str, ...], Counter[tuple[str, ...]]] = {}
    for phrase in _phrases(tokens):
        key = _singular(phrase)
        counts[key] += 1
        surface.setdefault(key, Counter())[phrase] += 1
    words: Counter[str] = Counter(w for key, n in counts.items() for w in key for _ in range(n))
    scored = []
    for key, n in counts.items():
        text = " ".join(surface[key].most_common(1)[0][0])
        if text in excluded:
            continue
        score = n * (1 + 0.6 * (len(key) - 1)) + 0.1 * sum(words[w] for w in key) / len(key)
        scored.append((score, text))
    scored.sort(key=lambda s: (-s[0], s[1]))
    out: list[str] = []
    for _, text in scored:
        # A single word already inside a chosen phrase adds little.
        if " " not in text and any(text in chosen.split(" ") for chosen in out):
            continue
        out.append(text)
        if len(out) == limit:
            break
    return out
