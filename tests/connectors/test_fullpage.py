"""connectors.fullpage: which items need their page, how a page's bytes become text, and the fetch itself
(from the local feed server, through the real fetcher and its guard)."""

from __future__ import annotations

from connectors.fetcher import Fetcher
from connectors.fullpage import decode_html, fetch_article, needs_article
from pipeline.schemas import RawItem
from pipeline.settings import PollSettings
from testkit.feedserver import FeedServer


def _item(**fields: object) -> RawItem:
    return RawItem.model_validate({"feed_url": "https://f.example/rss", "summary": "A summary.", **fields})


def test_only_a_web_link_without_content_needs_its_page() -> None:
    assert needs_article(_item(link="https://news.example/1"))
    assert not needs_article(_item(link="https://news.example/1", content="<p>Full text.</p>"))
    assert not needs_article(_item(link="mailto:desk@news.example"))
    assert not needs_article(_item())


def test_decode_uses_the_header_charset_then_the_meta_charset_then_utf8() -> None:
    cyrillic = "Новости дня".encode("cp1251")
    assert decode_html(cyrillic, "text/html; charset=windows-1251") == "Новости дня"
    page = b'<html><head><meta charset="windows-1251"></head><body>' + cyrillic + b"</body></html>"
    assert "Новости дня" in decode_html(page, "text/html")
    assert decode_html("Zürich".encode(), "text/html; charset=no-such-charset") == "Zürich"
    assert decode_html(b"caf\xe9", None) == "caf\ufffd"  # bad bytes are replaced, never an error


async def test_a_page_is_fetched_into_content(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_raw("/story", "<html><body><p>Новости дня</p></body></html>".encode("cp1251"),
                        content_type="text/html; charset=windows-1251")
    async with Fetcher(poll) as fetcher:
        item, ok = await fetch_article(fetcher, _item(link=feed_server.url("/story")))
    assert ok and item.content_fetched and "Новости дня" in (item.content or "")


async def test_a_page_that_cannot_be_had_leaves_the_item_as_it_was(feed_server: FeedServer, poll: PollSettings) -> None:
    feed_server.set_raw("/image", b"\x89PNG\r\n", content_type="image/png")
    feed_server.set_status("/gone", 404)
    async with Fetcher(poll) as fetcher:
        for path in ("/image", "/gone"):
            original = _item(link=feed_server.url(path))
            item, ok = await fetch_article(fetcher, original)
            assert not ok and item == original
        full = _item(link=feed_server.url("/gone"), content="<p>Full text.</p>")
        assert await fetch_article(fetcher, full) == (full, True)  # not fetched at all
    assert feed_server.stats("/gone").hits == 1
