"""Quality gates: a score measured on a hand-marked corpus must stay above a floor pinned in ``bench/floors/``.

- :mod:`testkit.quality.extraction`: the clean stage's article text (``bench/corpus/extraction/``);
- :mod:`testkit.quality.entities`: the enrich stage's entities (``bench/corpus/entities/``);
- :mod:`testkit.quality.gate`: pinning and checking floors.

The test suite runs them (tests/quality/); ``bench/eval_extraction.py`` and ``bench/eval_entities.py`` are their
command lines (tables, ``--update`` to re-pin floors, a JSON line for bench/record.py).
"""
