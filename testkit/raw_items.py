"""RawItems the worker tests put on ``news.raw``: the HTML fixture pages (``tests/fixtures/pages``), distinct
filler items, and their Kafka message."""

from __future__ import annotations

from pathlib import Path

from pipeline.canonical import canonical_url
from pipeline.schemas import RawItem

__all__ = ["PAGES", "PAGE_URLS", "_filler_items", "page_item", "raw_message"]

PAGES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pages"
PAGE_URLS = {
    "seed": ("seed-rt.html", "https://www.rt.com/news/632101-nato-compromise-ukraine-fatigue/"),
    "syndicated": ("seed-syndicated.html",
                   "https://eurasiawire.example.net/europe/2026/02/05/nato-compromise-ukraine-fatigue"),
    "unrelated": ("unrelated-same-topic.html",
                  "https://www.northernledger.example.org/world/abu-dhabi-talks-second-day"),
}


def page_item(name: str) -> RawItem:
    """A RawItem as the connector publishes it for one of the HTML fixture pages (full page fetched)."""
    file, url = PAGE_URLS[name]
    return RawItem(feed_url="https://feeds.example.org/world.xml", feed_name="test feed", link=url,
                   canonical_link=canonical_url(url), content=(PAGES / file).read_text(encoding="utf-8"),
                   content_fetched=True)


def raw_message(item: RawItem) -> tuple[bytes, bytes]:
    return item.key.encode(), item.model_dump_json().encode()


def _filler_items(count: int) -> list[RawItem]:
    """Distinct plain articles (summary-only feed items) that no dedupe rule would merge."""
    words = ["harbour", "council", "budget", "rail", "vote", "energy", "grid", "river", "festival", "school",
             "museum", "tariff", "drought", "election", "bridge", "hospital", "airport", "mayor", "union", "strike",
             "league", "court", "vaccine", "orchestra"]
    items = []
    for i in range(count):
        sentences = [f"Report {i} sentence {j}: the {words[(i * 7 + j) % len(words)]} "
                     f"{words[(i * 3 + j * 5) % len(words)]} story number {i * 100 + j} continues "
                     f"with {words[(i + j * 11) % len(words)]} details for readers in district {i}." for j in range(12)]
        url = f"https://filler.example.com/news/{i}-story"
        items.append(RawItem(feed_url="https://filler.example.com/rss", link=url, canonical_link=canonical_url(url),
                             title=f"Filler story {i}", summary=" ".join(sentences), language="en"))
    return items
