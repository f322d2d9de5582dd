"""Render the demo feeds in config/demo from articles.yaml and seed-article.txt (run after editing either).

    python config/demo/build_demo.py

Writes wire.xml (RSS 2.0 + content:encoded), gazette.atom (Atom 1.0), ledger.rdf (RSS 1.0 / RDF)
and copperline.json (JSON Feed 1.1). The output is committed, so running newsflow needs no build step.
"""

from __future__ import annotations

import email.utils
import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def seed_blocks() -> list[str]:
    text = (HERE / "seed-article.txt").read_text(encoding="utf-8")
    return [b.strip() for b in text.split("\n\n") if b.strip()]


def para(block: str, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>" + "<br/>".join(escape(line, quote=False) for line in block.splitlines()) + "</p>"


def seed_articles(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The seed story twice: as the syndicating outlet ran it (with boilerplate), and lightly edited."""
    blocks = seed_blocks()
    title, subtitle = blocks[1], blocks[3]
    body = blocks[4:]
    # 1. Meridian Wire: the page as it arrives, masthead, teasers and trailer included.
    html = ['<div class="masthead">' + "".join(para(b) for b in blocks[:3]) + "</div>", para(subtitle, "standfirst")]
    i = 0
    while i < len(body):
        if body[i] == "Read more" and i + 1 < len(body):
            html.append('<div class="read-more"><p><strong>Read more</strong></p>' + para(body[i + 1]) + "</div>")
            i += 2
            continue
        html.append(para(body[i]))
        i += 1
    wire = dict(cfg["wire"], outlet="wire", title=title, content="".join(html), summary=subtitle)
    # 2. Harbour Gazette: the story text only, a tweaked headline and a few edited sentences.
    story: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "Read more":
            i += 2
            continue
        story.append(body[i])
        if body[i].startswith("This article was first published"):
            break
        i += 1
    edited = "\n\n".join(story)
    for old, new in cfg["gazette"]["edits"]:
        assert old in edited, old
        edited = edited.replace(old, new)
    gazette_paras = edited.split("\n\n")
    gazette = dict(cfg["gazette"], outlet="gazette", paragraphs=gazette_paras,
                   related="Ukraine peace talks: what we know", summary=cfg["gazette"]["subtitle"])
    return [wire, gazette]


def render_content(article: dict[str, Any], outlet: dict[str, Any]) -> str:
    if "content" in article:
        return str(article["content"])
    paras = [para(p) for p in article["paragraphs"]]
    teaser = outlet["teaser"].format(home=outlet["home"], related=escape(article.get("related", "More news")))
    promo = outlet["promo"].format(home=outlet["home"])
    if article.get("subtitle"):
        paras.insert(0, para(article["subtitle"], "standfirst"))
    paras.insert(min(3, len(paras)), teaser)  # the teaser sits mid-article, as on the outlets' pages
    return "".join(paras) + promo


def summary_of(article: dict[str, Any]) -> str:
    return str(article.get("summary") or article["paragraphs"][0])


def rss20(outlet: dict[str, Any], items: list[dict[str, Any]]) -> str:
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">',
           f"<channel><title>{escape(outlet['title'])}</title><link>{outlet['home']}</link>",
           "<description>World and business news from Meridian Wire</description><language>en</language>",
           "<ttl>30</ttl>"]
    for a in items:
        url = outlet["home"] + a["slug"]
        out.append(
            f"<item><title>{escape(a['title'])}</title><link>{url}</link><guid isPermaLink=\"true\">{url}</guid>"
            f"<description>{escape(summary_of(a))}</description>"
            f"<content:encoded><![CDATA[{render_content(a, outlet)}]]></content:encoded>"
            f"<pubDate>{email.utils.format_datetime(datetime.fromisoformat(a['published']))}</pubDate>"
            f"<dc:creator>{escape(a['author'])}</dc:creator>"
            + "".join(f"<category>{escape(c)}</category>" for c in a["categories"]) + "</item>")
    out.append("</channel></rss>")
    return "\n".join(out) + "\n"


def atom10(outlet: dict[str, Any], items: list[dict[str, Any]]) -> str:
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-GB">',
           f"<title>{escape(outlet['title'])}</title><id>{outlet['home']}</id>",
           f'<link rel="alternate" href="{outlet["home"]}"/><link rel="self" href="{outlet["home"]}feed.atom"/>',
           f"<updated>{max(a['published'] for a in items)}</updated>"]
    for a in items:
        url = outlet["home"] + a["slug"]
        out.append(
            f"<entry><id>tag:harbourgazette.example,2026:{escape(a['slug'])}</id><title>{escape(a['title'])}</title>"
            f'<link rel="alternate" type="text/html" href="{url}"/>'
            f"<published>{a['published']}</published><updated>{a['published']}</updated>"
            f"<author><name>{escape(a['author'])}</name></author>"
            + "".join(f'<category term="{escape(c)}"/>' for c in a["categories"])
            + f"<summary>{escape(summary_of(a))}</summary>"
            f'<content type="html">{escape(render_content(a, outlet))}</content></entry>')
    out.append("</feed>")
    return "\n".join(out) + "\n"


def rss10(outlet: dict[str, Any], items: list[dict[str, Any]]) -> str:
    urls = [outlet["home"] + a["slug"] for a in items]
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
           'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">',
           f'<channel rdf:about="{outlet["home"]}rss.rdf"><title>{escape(outlet["title"])}</title>'
           f"<link>{outlet['home']}</link><description>Local news for Northfield County</description>"
           "<dc:language>en-us</dc:language><sy:updatePeriod>hourly</sy:updatePeriod>"
           "<sy:updateFrequency>2</sy:updateFrequency>",
           "<items><rdf:Seq>" + "".join(f'<rdf:li rdf:resource="{u}"/>' for u in urls) + "</rdf:Seq></items></channel>"]
    for a, url in zip(items, urls, strict=True):
        out.append(
            f'<item rdf:about="{url}"><title>{escape(a["title"])}</title><link>{url}</link>'
            f"<description>{escape(summary_of(a))}</description>"
            f"<content:encoded><![CDATA[{render_content(a, outlet)}]]></content:encoded>"
            f"<dc:date>{a['published']}</dc:date><dc:creator>{escape(a['author'])}</dc:creator>"
            + "".join(f"<dc:subject>{escape(c)}</dc:subject>" for c in a["categories"]) + "</item>")
    out.append("</rdf:RDF>")
    return "\n".join(out) + "\n"


def json11(outlet: dict[str, Any], items: list[dict[str, Any]]) -> str:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": outlet["title"],
        "home_page_url": outlet["home"],
        "feed_url": outlet["home"] + "feed.json",
        "language": "en",
        "items": [{
            "id": outlet["home"] + a["slug"],
            "url": outlet["home"] + a["slug"],
            "title": a["title"],
            "summary": summary_of(a),
            "content_html": render_content(a, outlet),
            "date_published": a["published"],
            "authors": [{"name": a["author"]}],
            "tags": a["categories"],
        } for a in items],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    data = yaml.safe_load((HERE / "articles.yaml").read_text(encoding="utf-8"))
    articles = seed_articles(data["seed"]) + data["articles"]
    writers = {"rss20": rss20, "atom10": atom10, "rss10": rss10, "json11": json11}
    for key, outlet in data["outlets"].items():
        mine = sorted((a for a in articles if a["outlet"] == key), key=lambda a: a["published"], reverse=True)
        text = writers[outlet["format"]](outlet, mine)
        (HERE / outlet["file"]).write_text(text, encoding="utf-8")
        words = [len(" ".join(a.get("paragraphs") or [a.get("content", "")]).split()) for a in mine]
        print(f"{outlet['file']}: {len(mine)} items, {min(words)}-{max(words)} words")  # noqa: T201


if __name__ == "__main__":
    main()
