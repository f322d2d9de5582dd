"""pipeline.wordcount: words by whitespace, one per character in scripts written without spaces."""

from __future__ import annotations

from pipeline.wordcount import count_words, first_words, tokens


def test_spaced_scripts_count_by_whitespace_and_symbols_are_not_words() -> None:
    assert count_words("") == 0
    assert count_words("one two three") == 3
    assert count_words("— · |") == 0
    assert count_words("don't e-mail") == 2


def test_unspaced_scripts_count_per_character() -> None:
    assert count_words("東京タワー") == 5


def test_first_words_cuts_with_an_ellipsis_only_when_needed() -> None:
    assert first_words("one two three four", 2) == "one two…"
    assert first_words("one two", 5) == "one two"


def test_tokens_are_case_folded_nfc_units() -> None:
    assert tokens("Hello, World! 東京") == ["hello", "world", "東", "京"]
    assert tokens("Cafe\u0301") == ["café"]  # the combining accent joins its letter
