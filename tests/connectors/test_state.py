"""Feed state: seen ids, atomic persistence, damaged files."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.state import FeedState, StateStore, distinct, item_id
from pipeline.schemas import RawItem


def _item(n: int) -> RawItem:
    return RawItem(feed_url="https://f.example/rss", guid=f"g{n}", link=f"https://f.example/{n}")


def test_distinct_and_mark_seen_with_cap() -> None:
    state = FeedState(url="https://f.example/rss")
    items = [_item(n) for n in range(5)]
    assert distinct([*items, items[0]]) == items  # duplicates inside one document count once
    state.mark_seen(items[:3], cap=4)
    assert state.seen == [item_id(i) for i in items[:3]]
    state.mark_seen(items, cap=4)
    assert len(state.seen) == 4 and item_id(items[0]) not in state.seen  # the oldest is forgotten


def test_record_failure_counts_until_a_success() -> None:
    state = FeedState(url="https://f.example/rss", error_count=1, errors_total=5, last_status="ok")
    at = datetime(2026, 2, 4, tzinfo=UTC)
    state.record_failure("timeout", "timed out after 20 s", at)
    assert (state.error_count, state.errors_total, state.last_status) == (2, 6, "error")
    assert (state.last_error_kind, state.last_error, state.last_error_at) == ("timeout", "timed out after 20 s", at)


def test_item_id_falls_back_from_guid_to_link_to_text() -> None:
    assert item_id(RawItem(feed_url="f", guid="a", link="l")) == item_id(RawItem(feed_url="f", guid="a"))
    assert item_id(RawItem(feed_url="f", link="https://x/1", canonical_link="https://x/1")) != item_id(
        RawItem(feed_url="f", link="https://x/2", canonical_link="https://x/2"))
    same_text = [RawItem(feed_url=f, title="t", summary="s") for f in ("f", "g")]
    assert item_id(same_text[0]) == item_id(same_text[1])


def test_store_round_trip_and_damaged_file(tmp_path) -> None:
    store = StateStore(tmp_path / "feeds")
    state = store.load("https://f.example/rss")
    state.etag, state.items_published = '"abc"', 3
    state.mark_seen([_item(1)], cap=10)
    store.save(state)
    again = store.load("https://f.example/rss")
    assert again.etag == '"abc"' and again.items_published == 3 and again.seen == state.seen
    assert [s.url for s in store.all()] == ["https://f.example/rss"]
    assert not list((tmp_path / "feeds").glob("*.tmp*"))
    for path in (tmp_path / "feeds").glob("*.json"):
        path.write_text("{broken")
    assert store.load("https://f.example/rss").seen == []


def test_feeds_are_interleaved_across_hosts() -> None:
    from connectors.feedlist import FeedSpec
    from connectors.service import interleave_hosts

    specs = [FeedSpec(url=f"https://a.example/{n}") for n in range(4)] + [
        FeedSpec(url=f"https://b.example/{n}") for n in range(2)]
    ordered = interleave_hosts(specs)
    assert [s.url.split("/")[2][0] for s in ordered] == ["a", "b", "a", "b", "a", "a"]
    assert sorted(s.url for s in ordered) == sorted(s.url for s in specs)
