"""pipeline.reindex: the result, the month of an index name, and the fill loop that reads news.enriched in batches.

The fill loop reads from a stand-in for TopicReader.scan (records of news.enriched as data) and indexes through a
recording ``add``; the rebuild against Elasticsearch and the alias switch are integration tests
(tests/integration/test_ops_reindex.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from pipeline import reindex
from pipeline.reindex import ReindexResult
from pipeline.schemas import EnrichedArticle
from testkit.alerts_corpus import sample_article


def test_result_as_dict_has_every_figure() -> None:
    result = ReindexResult(alias="news", documents_before=10, new_indices=["r1.news-2026.01"])
    assert result.as_dict() == {"alias": "news", "documents_before": 10, "documents_after": 0, "records_read": 0,
                                "invalid": 0, "rejected": 0, "new_indices": ["r1.news-2026.01"],
                                "removed_indices": [], "kept_indices": [], "took_s": 0.0}


def test_the_month_is_the_end_of_a_monthly_index_name() -> None:
    assert reindex._month("news-2026.01") == "2026.01"
    assert reindex._month("r1700000000.news-2025.12") == "2025.12"


class _Topic:
    """What _fill uses of a TopicReader: ``scan(topic, start=...)`` over a list of records."""

    def __init__(self, values: list[bytes]) -> None:
        self.records = [ConsumerRecord("news.enriched", 0, None, offset, 0, 0, None, value, [], None, -1,
                                       len(value), -1) for offset, value in enumerate(values)]

    def scan(self, topic: str, *, start: dict[int, int] | None = None) -> Iterator[ConsumerRecord]:
        first = (start or {}).get(0, 0)
        yield from (r for r in self.records if r.offset >= first)


async def test_fill_indexes_in_batches_counts_invalid_records_and_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reindex, "_BATCH", 2)
    articles = [sample_article(id=f"a{n}", story_id=f"a{n}") for n in range(3)]
    values = [articles[0].model_dump_json().encode(), b"not an article", *(a.model_dump_json().encode()
                                                                           for a in articles[1:])]
    batches: list[list[str]] = []

    async def add(batch: list[EnrichedArticle]) -> int:
        batches.append([a.id for a in batch])
        return 1 if "a2" in batches[-1] else 0  # the index refused one article of the last batch

    result = ReindexResult(alias="news", documents_before=0)
    stopped: dict[int, int] = await reindex._fill(add, _Topic(values), "news.enriched", result, None)  # type: ignore[arg-type]
    assert batches == [["a0", "a1"], ["a2"]]
    assert (result.records_read, result.invalid, result.rejected) == (4, 1, 1)
    assert stopped == {0: 4}
    # Catching up: from where the last pass stopped, only what came after.
    topic = _Topic([*values, sample_article(id="a3").model_dump_json().encode()])
    await reindex._fill(add, topic, "news.enriched", result, stopped)  # type: ignore[arg-type]
    assert batches[-1] == ["a3"] and result.records_read == 5
