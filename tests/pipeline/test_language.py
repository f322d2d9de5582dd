"""pipeline.language: langdetect made deterministic, with the feed's language hint for texts too short to judge."""

from __future__ import annotations

from pipeline.language import detect_language

ENGLISH = ("The government announced on Tuesday that it will increase spending on hospitals and schools next year, "
           "officials said.")
GERMAN = ("Die Regierung hat am Dienstag angekündigt, im nächsten Jahr mehr Geld für Krankenhäuser und Schulen "
          "auszugeben.")


def test_a_sentence_is_detected_and_a_wrong_hint_does_not_change_it() -> None:
    assert detect_language(ENGLISH) == "en"
    assert detect_language(GERMAN) == "de"
    assert detect_language(GERMAN, hint="en") == "de"


def test_the_same_text_always_gets_the_same_answer() -> None:
    assert {detect_language(ENGLISH) for _ in range(3)} == {"en"}


def test_a_short_text_takes_the_hints_primary_tag() -> None:
    assert detect_language("Hola amigo", hint="pt_BR") == "pt"
    assert detect_language("Hola amigo", hint="ES-mx") == "es"
    assert detect_language("ok", hint="en") == "en"


def test_nothing_to_judge_and_no_hint_is_none() -> None:
    assert detect_language("") is None
    assert detect_language("!!!") is None
