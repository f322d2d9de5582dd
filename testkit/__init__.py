"""Helpers shared by the test suite (``tests/``) and the benchmarks (``bench/``).

Importable from the checkout root: pytest puts it on ``sys.path`` (``pythonpath`` in pyproject.toml) and every
``bench/*.py`` script inserts it. Not part of the wheel (setuptools packages only ``pipeline*`` and
``connectors*``). Tests and benchmarks import from here, never from each other.

- :mod:`testkit.feedserver`: a local HTTP feed server on real sockets, and generated feed items;
- :mod:`testkit.alerts_corpus`: a generated alert corpus and rules, a loopback webhook receiver, polling;
- :mod:`testkit.topics`: per-test Kafka topics (created with the pipeline's layout, deleted by prefix);
- :mod:`testkit.sink_worker`: a minimal Faust worker running the sink, for a child process;
- :mod:`testkit.quality`: the extraction and entity quality gates (scores, pinned floors).
"""
