"""Script-aware word counting: the one count every length decision of the clean stage uses.

Whitespace splitting works for scripts that put spaces between words (Latin, Cyrillic, Greek, Arabic,
Devanagari, Hangul...). Chinese, Japanese and Thai (also Lao, Khmer, Myanmar) write words without
spaces: a whole paragraph is one "word" to ``str.split``, so every such paragraph looked like a stub.
Here each character of those scripts counts as one word (the convention of word processors for CJK),
and runs of other letters count by whitespace as before. Combining marks (Thai vowel signs and tone
marks) are part of their base character and do not count. A dictionary segmenter would give truer
Thai/Chinese word counts, but the counts only decide "stub or text" and "long enough to keep", for
which characters are a stable, dependency-free and fast measure.

``tokens`` gives the same units (case-folded, NFC): the extraction gate scores with it, so that a CJK
page is scored character by character rather than as a handful of sentence-long "tokens".
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["count_words", "first_words", "tokens"]

# Han (incl. extension A and compatibility ideographs), kana, CJK symbols-free letters, Thai, Lao, Myanmar,
# Khmer: scripts written without spaces between words.
_UNSPACED = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
# One unit: a single unspaced-script letter, or a run of other word characters (with inner apostrophes,
# hyphens and combining marks, so "don't", "e-mail" and "हिन्दी" stay one word as str.split sees them).
_MARKS = "\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u0900-\u0dff"  # Latin, Arabic and Indic marks
_UNIT = re.compile(rf"[{_UNSPACED}]|(?:(?![{_UNSPACED}])[\w{_MARKS}])+")
_UNSPACED_CHAR = re.compile(rf"[{_UNSPACED}]")
# A whitespace-separated token without a letter or digit ("—", "·", "|"): not a word.
_SYMBOLS_ONLY = re.compile(r"(?<!\S)[^\w\s]+(?!\S)")


def count_words(text: str) -> int:
    """Words in ``text``: whitespace-separated words, plus one per character of CJK/Thai-like scripts.

    Pure punctuation ("—", "·") is not a word. For text without those scripts this equals the number of
    whitespace-separated tokens that contain a letter or digit.
    """
    if not _UNSPACED_CHAR.search(text):
        # Both counts run in C: this is on the clean stage's hot path (every paragraph, several times).
        return len(text.split()) - len(_SYMBOLS_ONLY.findall(text))
    count = 0
    for word in text.split():
        unspaced = sum(1 for ch in _UNSPACED_CHAR.findall(word) if unicodedata.category(ch) != "Mn")
        if unspaced:
            # Mixed runs ("iPhone17を", "5月"): each unspaced character, plus the spaced-script run(s) between.
            rest = _UNSPACED_CHAR.sub(" ", word).split()
            count += unspaced + sum(1 for part in rest if not _SYMBOLS_ONLY.fullmatch(part))
        elif not _SYMBOLS_ONLY.fullmatch(word):
            count += 1
    return count


def first_words(text: str, limit: int) -> str:
    """The first ``limit`` words of ``text`` (by ``count_words``' units), with "…" when cut."""
    if count_words(text) <= limit:
        return text
    taken, out = 0, []
    for word in text.split():
        units = count_words(word)
        if taken + units > limit:
            if _UNSPACED_CHAR.search(word):
                out.append(word[: max(1, limit - taken)])
            break
        out.append(word)
        taken += units
    return " ".join(out) + "…"


def tokens(text: str) -> list[str]:
    """Case-folded NFC scoring units: one per CJK/Thai character, one per run of other word characters."""
    units = _UNIT.findall(unicodedata.normalize("NFC", text).casefold())
    return [unit for unit in units if unicodedata.category(unit[0]) != "Mn"]
