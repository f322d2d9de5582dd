"""refresh_feed's bookkeeping without a broker: only acknowledged items become seen; errors back off.

The publisher here is a stand-in that acknowledges or refuses chosen items, to reach the
"Kafka did not acknowledge" branch deterministically; tests/integration covers the real broker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.feedlist import FeedSpec
from connectors.fetcher import Fetcher
from connectors.parser import parse_feed
from connectors.publisher import PublishOutcome
from connectors.refresh import refresh_feed
from connectors.state import FeedState, item_id
from pipeline.schemas import RawItem
from pipeline.settings import PollSettings
from testkit.feedserver import FeedServer, make_items

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"


class StandInPublisher:
    def __init__(self, refuse: set[str] | None = None) -> None:
        self.refuse = refuse or set()
        self.sent: list[RawItem] = []

    async def publish(self, items: list[RawItem]) -> PublishOutcome:
        out = PublishOutcome()
        for item in items:
            if item.guid in self.refuse:
                out.failed.append((item, "KafkaTimeoutError: stand-in"))
            else:
                out.acked.append(item)
                self.sent.append(item)
        return out


async def test_unacknowledged_items_stay_unseen_and_validators_are_not_stored(
    feed_server: FeedServer, poll: PollSettings
) -> None:
    items = make_items(4)
    feed_server.set_feed("/f.xml", items)
    spec, state = FeedSpec(url=feed_server.url("/f.xml")), FeedState(url=feed_server.url("/f.xml"))
    publisher = StandInPublisher(refuse={items[1]["guid"]})
    async with Fetcher(poll) as fetcher:
        first = await refresh_feed(spec, state, fetcher=fetcher, publisher=publisher, poll=poll)  # type: ignore[arg-type]
        assert first.status == "error" and first.kind == "publish_failed"
        assert first.published == 3 and first.publish_failed == 1
        assert state.etag is None and state.body_hash is None and state.error_count == 1
        publisher.refuse.clear()
        second = await refresh_feed(spec, state, fetcher=fetcher, publisher=publisher, poll=poll)  # type: ignore[arg-type]
    assert second.status == "ok" and second.published == 1 and second.skipped == 3
    assert sorted(i.guid or "" for i in publisher.sent) == sorted(i["guid"] for i in items)
    assert state.etag and state.error_count == 0 and state.items_published == 4


async def test_server_ignoring_conditional_get_is_not_reparsed(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_feed("/f.xml", make_items(2), ignore_conditional=True)
    spec, state = FeedSpec(url=feed_server.url("/f.xml")), FeedState(url=feed_server.url("/f.xml"))
    publisher = StandInPublisher()
    async with Fetcher(poll) as fetcher:
        await refresh_feed(spec, state, fetcher=fetcher, publisher=publisher, poll=poll)  # type: ignore[arg-type]
        again = await refresh_feed(spec, state, fetcher=fetcher, publisher=publisher, poll=poll)  # type: ignore[arg-type]
    assert again.status == "not_modified" and feed_server.stats("/f.xml").not_modified == 0
    assert len(publisher.sent) == 2


async def test_errors_back_off_and_are_recorded_never_disabled(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_status("/gone", 410)
    spec, state = FeedSpec(url=feed_server.url("/gone")), FeedState(url=feed_server.url("/gone"))
    now = datetime(2026, 2, 1, tzinfo=UTC)
    delays = []
    async with Fetcher(poll) as fetcher:
        for _ in range(4):
            outcome = await refresh_feed(spec, state, fetcher=fetcher, publisher=StandInPublisher(),  # type: ignore[arg-type]
                                         poll=poll, now=now)
            delays.append(outcome.delay_s)
    assert state.error_count == 4 and state.last_error_kind == "http_status" and "410" in (state.last_error or "")
    assert state.next_check_at is not None and state.next_check_at > now
    assert delays[-1] > delays[0]


async def test_permanent_redirect_is_remembered(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_feed("/new.xml", make_items(1))
    feed_server.redirect("/old.xml", "/new.xml", status=301)
    spec, state = FeedSpec(url=feed_server.url("/old.xml")), FeedState(url=feed_server.url("/old.xml"))
    async with Fetcher(poll) as fetcher:
        await refresh_feed(spec, state, fetcher=fetcher, publisher=StandInPublisher(), poll=poll)  # type: ignore[arg-type]
        await refresh_feed(spec, state, fetcher=fetcher, publisher=StandInPublisher(), poll=poll)  # type: ignore[arg-type]
    assert state.moved_to == feed_server.url("/new.xml")
    assert feed_server.stats("/old.xml").hits == 1 and feed_server.stats("/new.xml").hits == 2


async def test_summary_only_items_get_their_page_and_a_failed_page_still_publishes(
    feed_server: FeedServer, poll: PollSettings
) -> None:
    items = make_items(2, content=False, host=feed_server.base_url)
    items[0]["link"] = feed_server.url("/story/0")
    feed_server.set_raw("/story/0", b"<html><body><article><p>The whole story.</p></article></body></html>",
                        content_type="text/html; charset=utf-8")
    feed_server.set_feed("/f.xml", items)  # /story/1 is not served: 404
    spec, state = FeedSpec(url=feed_server.url("/f.xml"), fetch_article=True), FeedState(url=feed_server.url("/f.xml"))
    publisher = StandInPublisher()
    async with Fetcher(poll) as fetcher:
        outcome = await refresh_feed(spec, state, fetcher=fetcher, publisher=publisher, poll=poll)  # type: ignore[arg-type]
    assert outcome.published == 2 and outcome.article_failures == 1
    by_guid = {i.guid: i for i in publisher.sent}
    fetched = by_guid[items[0]["guid"]]
    assert fetched.content_fetched and "The whole story." in (fetched.content or "")
    missing = by_guid[items[1]["guid"]]
    assert not missing.content_fetched and missing.content is None and missing.summary


_JSON_FEED = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
    {"id": "1", "url": "https://j.example/1", "title": "with id"},
    {"url": "https://j.example/2?utm_source=x", "title": "link only"},
    {"title": "text only", "content_text": "no id, no link"},
]}).encode()


@pytest.mark.parametrize(("body", "fast_path"), [
    *((path.read_bytes(), fast) for path in sorted(FEEDS.glob("*.xml")) for fast in (True, False)),
    (_JSON_FEED, True),
], ids=[*(f"{path.name}-{'fast' if fast else 'feedparser'}" for path in sorted(FEEDS.glob("*.xml"))
          for fast in (True, False)), "json-feed"])
def test_the_parser_skips_exactly_the_items_already_seen(body: bytes, fast_path: bool) -> None:
    # refresh_feed's only seen-filter is parse_feed's skip_ids: the parser's identity of an entry must be item_id.
    parsed = parse_feed(body, feed_url="https://f.example/rss", fast_path=fast_path)
    assert parsed.items
    again = parse_feed(body, feed_url="https://f.example/rss", fast_path=fast_path,
                       skip_ids=frozenset(item_id(i) for i in parsed.items))
    assert again.items == [] and again.item_count == parsed.item_count
