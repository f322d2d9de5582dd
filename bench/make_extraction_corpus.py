"""Build the multilingual pages of bench/corpus/extraction from bench/corpus/extraction_texts.py.

Each language gets the same set of layouts (seven pages), every one imitating a common real template, with
that language's own text and furniture, so a layout's weakness shows in every script:

- ``classic``: header, navigation, breadcrumbs, byline, share bar, figure, tags, related and ranking boxes, footer;
- ``portal``: a Korean-portal-style page: the body is text separated by ``<br><br>`` in one ``div`` (no ``<p>``)
  that opens with an empty ad slot, an "input time" line above it, the reporter's e-mail inside it and the
  copyright line below it, ranking and widget columns;
  its text names a work in angle brackets written as escaped text (``&lt;Title&gt;``);
- ``spacer``: the body is bare text nodes between empty spacer ``div``s (a CMS's line-spacing markup);
- ``ticker``: a live ticker: an intro, timestamped entries with their own share links, a "load more" button;
- ``gallery``: a photo gallery with slide captions and counters between the paragraphs;
- ``table``: a results story whose standings table is part of the article;
- ``widgets``: a regional portal where the article sits among weather, currency and headline widgets, in a
  table-free ``div`` soup with the footer address and copyright;
- ``brief``: a one-paragraph news brief in the same ``div`` soup, dwarfed by its widgets and headline lists;
- ``inline``: a "related" box with its label, thumbnails and headlines between two paragraphs of the body, in
  neutral markup (``div class="box"``), and reader comments in the page's language below the article;
- ``next``: an infinite-scroll page where the next story is already appended below the first (only the first
  is the page's article);
- ``front``: a section front with no article at all (widgets, headline lists, footer): its expected text is
  empty, and any text taken from it counts against precision.

The expected text follows the marking rules of bench/corpus/extraction/README.md. Output is committed; run
``python bench/make_extraction_corpus.py`` after editing the texts, then re-pin the floors.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "corpus" / "extraction"
sys.path.insert(0, str(ROOT))
from bench.corpus.extraction_texts import LANGS  # noqa: E402

Page = tuple[str, list[str]]


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def _plain(paragraph: str) -> str:
    return paragraph.removeprefix("## ")


def _head(lang: str, data: dict[str, Any], story: dict[str, Any]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}" dir="{data["dir"]}"><head><meta charset="utf-8">'
        f"<title>{esc(story['title'])} | {esc(data['site'])}</title>"
        f'<meta property="og:title" content="{html.escape(story["title"])}">'
        f'<meta property="og:site_name" content="{html.escape(data["site"])}">'
        f'<meta name="description" content="{html.escape(story["standfirst"])}">'
        '<meta property="article:published_time" content="2026-02-04T18:40:00+09:00">'
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}</script>"
        "<style>.spacer{height:20px}.hidden{display:none}</style></head>\n"
    )


def _nav(data: dict[str, Any], cls: str = "gnb") -> str:
    items = "".join(f'<li><a href="/{i}">{esc(n)}</a></li>' for i, n in enumerate(data["nav"]))
    return f'<nav class="{cls}"><ul>{items}</ul></nav>'


def _links(items: list[str], label: str, cls: str) -> str:
    lis = "".join(f'<li><a href="/news/{i}">{esc(t)}</a></li>' for i, t in enumerate(items))
    return f'<div class="{cls}"><h3>{esc(label)}</h3><ul>{lis}</ul></div>'


def _footer(data: dict[str, Any]) -> str:
    return (
        f'<footer class="site-footer"><p>{esc(data["address"])}</p><p>{esc(data["copyright"])}</p></footer>'
        '<script src="/static/app.js"></script></body></html>\n'
    )


def _body_html(paragraphs: list[str], heading: str = "h2") -> str:
    out = []
    for paragraph in paragraphs:
        if paragraph.startswith("## "):
            out.append(f"<{heading}>{esc(_plain(paragraph))}</{heading}>")
        else:
            out.append(f"<p>{esc(paragraph)}</p>")
    return "".join(out)


def _around(text: list[str], block: str) -> str:
    """The paragraphs with ``block`` (a gallery, a related box) after the second one, where templates put it."""
    return "".join(f"<p>{esc(p)}</p>" for p in text[:2]) + block + "".join(f"<p>{esc(p)}</p>" for p in text[2:])


def classic(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][0]
    share = "".join(f'<a href="#s{i}">{esc(s)}</a>' for i, s in enumerate(data["share"]))
    page = (
        _head(lang, data, story)
        + f'<body><header><a class="logo" href="/">{esc(data["site"])}</a>{_nav(data)}</header>'
        + f'<div class="breadcrumb"><a href="/">{esc(data["nav"][0])}</a> &gt; '
        + f'<a href="/s">{esc(data["nav"][3])}</a></div>'
        + f'<main><article><h1>{esc(story["title"])}</h1><p class="standfirst">{esc(story["standfirst"])}</p>'
        + f'<div class="byline"><span>{esc(data["byline"])}</span> <time>{esc(data["dateline"])}</time></div>'
        + f'<div class="share">{share}</div>'
        + f'<figure><img src="/img/1.jpg" alt=""><figcaption>{esc(data["captions"][0])}</figcaption></figure>'
        + f'<div class="article-body">{_body_html(story["paragraphs"])}</div>'
        + f'<ul class="tags"><li><a href="/t/1">{esc(data["nav"][2])}</a></li>'
        + f'<li><a href="/t/2">{esc(data["nav"][5])}</a></li></ul>'
        + "</article>"
        + f'<aside>{_links(data["related"], data["related_label"], "related")}'
        + f'{_links(data["related"][::-1], data["ranking_label"], "ranking")}</aside></main>'
        + _footer(data)
    )
    return page, [_plain(p) for p in story["paragraphs"]]


def portal(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][1]
    paragraphs = [story["paragraphs"][0], data["tag_like"], *story["paragraphs"][1:]]
    parts = []
    for paragraph in paragraphs:
        parts.append(f"<b>{esc(_plain(paragraph))}</b>" if paragraph.startswith("## ") else esc(paragraph))
    body = "<br><br>".join(parts)
    widgets = "".join(f'<li class="w">{esc(w)}</li>' for w in data["weather"] + data["currency"])
    page = (
        _head(lang, data, story)
        + f'<body><div id="wrap"><div id="header"><h1 class="logo"><a href="/">{esc(data["site"])}</a></h1>'
        + f'{_nav(data)}<ul class="widget">{widgets}</ul></div>'
        + '<div id="container"><div id="content">'
        + f'<div class="article_head"><h3 class="tit">{esc(story["title"])}</h3>'
        + f'<p class="info"><span class="date">{esc(data["input_time"])}</span>'
        + f'<span class="share">{esc(data["share"][0])}</span></p></div>'
        # An empty ad slot opens the body: with it, trafilatura's fast mode returned only the "input time" and
        # copyright lines of such portals (issue 11).
        + f'<div id="articleBody" class="article_body" itemprop="articleBody"><div class="ad_slot"></div>{body}'
        + f'<br><br>{esc(data["byline"])}</div><p class="copyright">{esc(data["copyright"])}</p>'
        + f'{_links(data["related"], data["related_label"], "relation")}</div>'
        + f'<div id="aside">{_links(data["related"][::-1], data["ranking_label"], "rank")}</div></div>'
        + "</div>"
        + _footer(data)
    )
    return page, [_plain(p) for p in paragraphs]


def spacer(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][0]
    text = [p for p in story["paragraphs"] if not p.startswith("## ")]
    body = '<div class="spacer"></div>'.join(esc(p) for p in text)
    page = (
        _head(lang, data, story)
        + f'<body><div id="wrap"><div class="top">{_nav(data, "menu")}</div>'
        + f'<div class="article"><h1>{esc(story["title"])}</h1>'
        + f'<div class="meta">{esc(data["dateline"])}</div>'
        + f'<div class="txt">{body}</div></div>'
        + f'{_links(data["related"], data["ranking_label"], "rank")}</div>'
        + _footer(data)
    )
    return page, text


def ticker(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][1]
    entries = "".join(
        f'<article class="ticker-entry"><time class="stamp">{esc(t)}</time><p>{esc(s)}</p>'
        f'<div class="entry-share"><a href="#e{i}">{esc(data["share"][0])}</a></div></article>'
        for i, (t, s) in enumerate(data["ticker"])
    )
    page = (
        _head(lang, data, story)
        + f'<body><header>{_nav(data)}</header><main class="live">'
        + f'<div class="live-badge">{esc(data["ticker_label"])}</div><h1>{esc(story["title"])}</h1>'
        + f'<div class="intro"><p>{esc(story["paragraphs"][0])}</p></div>'
        + f'<section class="ticker">{entries}</section>'
        + f'<button class="load-more">{esc(data["read_more"])}</button></main>'
        + f'<aside>{_links(data["related"], data["related_label"], "related")}</aside>'
        + _footer(data)
    )
    return page, [story["paragraphs"][0], *(s for _, s in data["ticker"])]


def gallery(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][1]
    text = [p for p in story["paragraphs"] if not p.startswith("## ")]
    n = len(data["captions"])
    slides = "".join(
        f'<li class="slide"><img src="/g/{i}.jpg" alt=""><p class="caption">{esc(c)}</p>'
        f'<span class="counter">{i + 1}/{n}</span></li>'
        for i, c in enumerate(data["captions"])
    )
    gallery = f'<div class="gallery"><ul>{slides}</ul><a class="next" href="#">&rsaquo;</a></div>'
    page = (
        _head(lang, data, story)
        + f'<body>{_nav(data, "main-nav")}<div class="content"><h1>{esc(story["title"])}</h1>'
        + f'<div class="lead">{esc(story["standfirst"])}</div>'
        + f'<div class="story">{_around(text, gallery)}'
        + f'</div>{_links(data["related"], data["related_label"], "more")}</div>'
        + _footer(data)
    )
    return page, text


def table(lang: str, data: dict[str, Any]) -> Page:
    t = data["table"]
    story = {"title": t["caption"], "standfirst": t["intro"][:40]}
    head = "".join(f"<th>{esc(h)}</th>" for h in t["header"])
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in t["rows"])
    page = (
        _head(lang, data, story)
        + f'<body><header>{_nav(data)}</header><main><article><h1>{esc(t["caption"])}</h1>'
        + f'<div class="byline">{esc(data["byline"])} · {esc(data["dateline"])}</div>'
        + f'<div class="article-body"><p>{esc(t["intro"])}</p><h3>{esc(t["caption"])}</h3>'
        + f'<table class="standings"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        + f'<p>{esc(t["outro"])}</p></div></article>'
        + f'<aside>{_links(data["related"], data["ranking_label"], "ranking")}</aside></main>'
        + _footer(data)
    )
    # The h3 repeats the title: a heading equal to the title is the title's, not the body's (marking rules).
    expected = [t["intro"], " ".join(t["header"]), *(" ".join(row) for row in t["rows"]), t["outro"]]
    return page, expected


def widgets(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][0]
    weather = "".join(f'<div class="wx-item"><span>{esc(w)}</span></div>' for w in data["weather"])
    money = "".join(f'<div class="fx-item">{esc(c)}</div>' for c in data["currency"])
    heads = "".join(f'<div class="hl"><a href="/h{i}">{esc(h)}</a></div>' for i, h in enumerate(data["related"]))
    page = (
        _head(lang, data, story)
        + f'<body><div class="page"><div class="bar">{_nav(data, "topmenu")}</div>'
        + f'<div class="cols"><div class="col-left"><div class="wx">{weather}</div><div class="fx">{money}</div></div>'
        + f'<div class="col-main"><div class="headline">{esc(story["title"])}</div>'
        + f'<div class="sub">{esc(story["standfirst"])}</div><div class="when">{esc(data["input_time"])}</div>'
        + f'<div class="text">{_body_html(story["paragraphs"], "h4")}</div>'
        + f'<div class="hls">{heads}</div></div>'
        + f'<div class="col-right"><div class="box"><div class="box-t">{esc(data["ranking_label"])}</div>{heads}</div>'
        + "</div></div>"
        + f'<div class="foot"><div>{esc(data["address"])}</div><div>{esc(data["copyright"])}</div></div></div>'
        + "</body></html>\n"
    )
    return page, [_plain(p) for p in story["paragraphs"]]


def inline(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][1]
    text = [p for p in story["paragraphs"] if not p.startswith("## ")]
    box = (
        f'<div class="box"><div class="box-label">{esc(data["related_label"])}</div>'
        + "".join(f'<div class="box-item"><img src="/t/{i}.jpg" alt=""><a href="/r/{i}">{esc(h)}</a></div>'
                  for i, h in enumerate(data["related"][:2]))
        + "</div>"
    )
    comments = "".join(
        f'<div class="comment"><div class="user">user{i}</div><div class="text">{esc(t)}</div></div>'
        for i, (_, t) in enumerate(data["ticker"][:2])
    )
    page = (
        _head(lang, data, story)
        + f'<body><header>{_nav(data)}</header><div class="main"><h1>{esc(story["title"])}</h1>'
        + f'<div class="content">{_around(text, box)}</div><div class="comments" id="comments">{comments}</div></div>'
        + _footer(data)
    )
    return page, text


def next_story(lang: str, data: dict[str, Any]) -> Page:
    first, second = data["stories"]
    page = (
        _head(lang, data, first)
        + f'<body><header>{_nav(data)}</header><main>'
        + f'<article class="story" data-id="1"><h1>{esc(first["title"])}</h1>'
        + f'<div class="story-body">{_body_html(first["paragraphs"])}</div></article>'
        + f'<div class="next-label">{esc(data["read_more"])}</div>'
        + f'<article class="story" data-id="2"><h2>{esc(second["title"])}</h2>'
        + f'<div class="story-body">{_body_html(second["paragraphs"][:2])}</div></article></main>'
        + _footer(data)
    )
    return page, [_plain(p) for p in first["paragraphs"]]


def _soup(lang: str, data: dict[str, Any], story: dict[str, Any], centre: str) -> str:
    heads = "".join(
        f'<div class="hl"><a href="/h{i}">{esc(h)}</a><span class="t">{esc(data["dateline"])}</span></div>'
        for i, h in enumerate(data["related"] * 3)
    )
    boxes = "".join(f'<div class="wx">{esc(w)}</div>' for w in data["weather"] + data["currency"])
    return (
        _head(lang, data, story)
        + f'<body><div class="bar">{_nav(data, "topmenu")}</div><div class="cols"><div class="l">{boxes}</div>'
        + f'<div class="c">{centre}</div><div class="r"><div class="box-t">{esc(data["ranking_label"])}</div>'
        + f'{heads}</div></div><div class="foot"><div>{esc(data["address"])}</div><div>{esc(data["copyright"])}</div>'
        + "</div></body></html>\n"
    )


def brief(lang: str, data: dict[str, Any]) -> Page:
    story = data["stories"][1]
    centre = f'<div class="t">{esc(story["title"])}</div><div class="x">{esc(story["paragraphs"][0])}</div>'
    return _soup(lang, data, story, centre), [story["paragraphs"][0]]


def front(lang: str, data: dict[str, Any]) -> Page:
    story = {"title": data["nav"][3], "standfirst": data["site"]}
    centre = "".join(f'<div class="teaser"><a href="/f{i}">{esc(h)}</a></div>' for i, h in enumerate(data["related"]))
    return _soup(lang, data, story, centre), []


LAYOUTS: dict[str, Callable[[str, dict[str, Any]], Page]] = {
    "classic": classic, "portal": portal, "spacer": spacer, "ticker": ticker, "gallery": gallery, "table": table,
    "widgets": widgets, "brief": brief, "front": front, "inline": inline, "next": next_story,
}


def build(corpus: Path = CORPUS) -> list[str]:
    names = []
    for lang, data in LANGS.items():
        for layout, make in LAYOUTS.items():
            page, expected = make(lang, data)
            name = f"{lang}-{layout}"
            (corpus / f"{name}.html").write_text(page, encoding="utf-8")
            text = "\n\n".join(expected) + "\n" if expected else ""
            (corpus / f"{name}.expected.txt").write_text(text, encoding="utf-8")
            names.append(name)
    return names


if __name__ == "__main__":
    print(f"{len(build())} pages written to {CORPUS}")
