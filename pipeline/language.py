"""Detect the language of an article body with langdetect, deterministically."""

from __future__ import annotations

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from pipeline.wordcount import count_words

__all__ = ["detect_language"]

# langdetect samples n-grams at random: a fixed seed makes the same text always get the same answer,
# in every worker process (the seed is read when a detector is created, after this module is imported).
DetectorFactory.seed = 0

# Enough text to be sure of the language (a few sentences); more only costs time: detection is linear in
# length and was two thirds of the stage at 3,000 chars (bench/stage_clean.py).
_MAX_CHARS = 1000
# When the two best guesses are this close, the feed's own language hint decides between them.
_TIE_MARGIN = 0.15
# Below this many words langdetect is confidently wrong ("Hola amigo" -> Somali at p=0.99999): a hint,
# when there is one, is the better answer.
_MIN_WORDS = 8
# langdetect averages 7 random-sampling trials by default; its per-trial loop is most of the clean stage's
# CPU. 3 trials give the same answer on article-length text (bench/eval_extraction.py's German page, the
# tests) at less than half the cost.
_TRIALS = 3

_factory: DetectorFactory | None = None


def _detector_factory() -> DetectorFactory:
    # One factory per process (profiles take ~0.3 s to load); built lazily so importing stays cheap.
    global _factory
    if _factory is None:
        factory = DetectorFactory()
        factory.load_profile(PROFILES_DIRECTORY)
        _factory = factory
    return _factory


def detect_language(text: str, *, hint: str | None = None) -> str | None:
    """The ISO 639-1 code of ``text`` ("en", "de", "zh-cn"...), or ``hint``'s primary tag when undecidable.

    The hint (the feed's declared language) only breaks near-ties and decides for a text too short to
    judge: a feed that says "en" but carries a German article gets "de".
    """
    hint_code = hint.split("-")[0].split("_")[0].strip().lower() if hint else None
    sample = text[:_MAX_CHARS]
    if hint_code and count_words(sample) < _MIN_WORDS:
        return hint_code
    try:
        detector = _detector_factory().create()
        detector.n_trial = _TRIALS
        detector.append(sample)
        guesses = detector.get_probabilities()
    except LangDetectException:
        # No letters to judge by (numbers, symbols, empty): the hint is all there is.
        return hint_code or None
    if not guesses:
        return hint_code or None
    best = guesses[0]
    if hint_code and best.lang.split("-")[0] != hint_code:
        for other in guesses[1:]:
            if other.lang.split("-")[0] == hint_code and best.prob - other.prob <= _TIE_MARGIN:
                return str(other.lang)
    return str(best.lang)
