"""Helpers shared by the test suite (``tests/``) and the benchmarks (``bench/``).

Importable from the checkout root: pytest puts it on ``sys.path`` (``pythonpath`` in pyproject.toml) and every
``bench/*.py`` script inserts it. Not part of the wheel (setuptools packages only ``pipeline*`` and
``connectors*``). Tests and benchmarks import from here, never from each other; a test file never imports another
test file.

- :mod:`testkit.feedserver`: a local HTTP feed server on real sockets, and generated feed items;
- :mod:`testkit.alerts_corpus`: a generated alert corpus and rules, a loopback webhook receiver, an SMTP mailbox,
  polling;
- :mod:`testkit.topics`: per-test Kafka topics (created with the pipeline's layout, deleted by prefix), a producer
  and a reader of whole topics;
- :mod:`testkit.worker`: `newsflow worker` in a child process, its environment, its group's progress, its metrics;
- :mod:`testkit.raw_items`: the HTML fixture pages and filler items as RawItems for ``news.raw``;
- :mod:`testkit.es_index`: throw-away indices filled through the sink, and the removal of a test's data;
- :mod:`testkit.private_stack`: settings for a Kafka broker or Elasticsearch node of one test's own;
- :mod:`testkit.sink_worker`: a minimal Faust worker running the sink, for a child process, and its test rig;
- :mod:`testkit.quality`: the extraction and entity quality gates (scores, pinned floors).
"""
