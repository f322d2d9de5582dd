"""The entity quality gate as a test: floors hold and enrich beats raw spaCy.

The gate is testkit/quality/entities.py (its command line: bench/eval_entities.py).
"""

from __future__ import annotations

from types import ModuleType

import pytest

from pipeline.settings import PipelineSettings
from testkit.quality import entities


@pytest.fixture(scope="module")
def gate() -> ModuleType:
    return entities


def test_corpus_has_at_least_ten_annotated_articles(gate):
    assert len(gate.corpus_docs()) >= 10


def test_entity_quality_meets_floors_and_beats_raw_spacy(gate):
    result = gate.run()
    # The gate grades what the worker runs: the settings' NER budget, not a configuration of its own.
    assert result["ner_max_words"] == PipelineSettings().ner_max_words
    problems = gate.check(result["scores"], result["baseline_raw_spacy"], gate.load_floors(), gate.corpus_digest())
    assert problems == [], (problems, result["scores"], result["baseline_raw_spacy"])


def test_update_refuses_to_lower_a_floor(gate, tmp_path):
    floors = tmp_path / "floors.json"
    high = dict.fromkeys(gate.METRICS, 0.9)
    assert gate.update(high, "d", allow_regression=False, path=floors) == []
    low = dict.fromkeys(gate.METRICS, 0.5)
    assert gate.update(low, "d", allow_regression=False, path=floors)  # refused
    assert gate.update(low, "d", allow_regression=True, path=floors) == []
    assert gate.load_floors(floors)["floors"]["f1"] < 0.5
