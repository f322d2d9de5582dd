"""Hypothesis strategies for varied RSS 2.0 / Atom 1.0 / RSS 1.0 documents (the parity test's input).

A generated document is ``Doc(body, content_type, plain)``. ``plain`` means only elements, attributes and
encodings of the fast path's whitelist were used, so the fast path must accept it (else the parity
test would pass by declining everything).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

NS = {
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "sy": "http://purl.org/rss/1.0/modules/syndication/",
    "atom": "http://www.w3.org/2005/Atom",
    "media": "http://search.yahoo.com/mrss/",
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rss1": "http://purl.org/rss/1.0/",
    "x": "http://unknown.example/ns",
    "wfw": "http://wellformedweb.org/CommentAPI/",
    "slash": "http://purl.org/rss/1.0/modules/slash/",
    "xhtml": "http://www.w3.org/1999/xhtml",
}
DECLS = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items() if p not in ("rss1", "rdf", "xhtml"))
PLAIN_DECLS = " ".join(f'xmlns:{p}="{NS[p]}"' for p in ("content", "dc", "sy", "atom", "wfw", "slash"))


@dataclass(frozen=True)
class Doc:
    body: bytes
    content_type: str | None
    plain: bool

    def __repr__(self) -> str:  # hypothesis prints the failing example: show the text
        return f"Doc(content_type={self.content_type!r}, plain={self.plain}, body={self.body!r})"


WORDS = ["news", "Caf\u00e9", "don\u2019t", "\u201cquoted\u201d", "Z\u00fcrich", "\u00c3\u00a9t\u00e9", "A & B",
         "1 < 2", "<p>markup</p>", "&amp;", "tab\there", "  padded  ", "\u20ac5", "\u4e2d\u6587", "x",
         "me@example.com", "(Example editor)", "Example editor (me@example.com)",
         "me@example.com (Example editor)", "", "\u0092s", "<b>bold</b> text", "http://a.example/p?a=1&b=2"]
URLS = ["https://news.example.com/a", "/relative/path", "story.html", "https://n.example/p?a=1&b=2", "",
        "tag:example.com,2026:1", "urn:uuid:1234", "  https://n.example/spaced  ", "mailto:x@example.com",
        "javascript:alert(1)", "https://n.example/\u00e9t\u00e9"]
DATES = ["Wed, 04 Feb 2026 19:05:00 GMT", "Wed, 04 Feb 2026 19:05:00 +0100", "2026-02-04T19:05:00+00:00",
         "2026-02-04T19:05:00Z", "2026-02-04", "04 Feb 26 19:05 EST", "not a date", "", "2026-02-04 19:05:00",
         "Thu, 31 Feb 2026 10:00:00 GMT", "Mon, 4 Feb 2026 9:5:0 PDT"]

texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=3).map(" ".join)


@st.composite
def text_node(draw: st.DrawFn, value: st.SearchStrategy[str] = texts) -> str:
    """Element content: escaped text, a CDATA section, or character references."""
    raw = draw(value)
    how = draw(st.sampled_from(["escape", "escape", "cdata", "charref"]))
    if how == "cdata" and "]]>" not in raw:
        return f"<![CDATA[{raw}]]>"
    if how == "charref":
        return "".join(f"&#{ord(c)};" if ord(c) > 127 or c in "<&" else c for c in raw)
    return escape(raw)


def el(tag: str, inner: str, attrs: str = "") -> str:
    return f"<{tag}{attrs}>{inner}</{tag}>"


@st.composite
def rss_item(draw: st.DrawFn, plain: bool) -> tuple[str, bool]:
    """One <item>; returns (xml, stayed plain)."""
    parts: list[str] = []
    singles = {
        "title": lambda: el("title", draw(text_node())),
        "link": lambda: el("link", draw(text_node(st.sampled_from(URLS)))),
        "description": lambda: el("description", draw(text_node())),
        "guid": lambda: el("guid", draw(text_node(st.sampled_from(URLS))), draw(st.sampled_from(
            ["", ' isPermaLink="false"', ' isPermaLink="true"', ' isPermaLink="True"']))),
        "pubDate": lambda: el("pubDate", escape(draw(st.sampled_from(DATES)))),
        "author": lambda: el("author", draw(text_node())),
        "comments": lambda: el("comments", draw(text_node(st.sampled_from(URLS)))),
        "content:encoded": lambda: el("content:encoded", draw(text_node())),
        "dc:date": lambda: el("dc:date", escape(draw(st.sampled_from(DATES)))),
        "wfw:commentRss": lambda: el("wfw:commentRss", draw(text_node(st.sampled_from(URLS)))),
        "slash:comments": lambda: el("slash:comments", draw(st.sampled_from(["0", "12", ""]))),
    }
    repeatable = {
        "category": lambda: el("category", draw(text_node())),
        "dc:creator": lambda: el("dc:creator", draw(text_node())),
        "enclosure": lambda: "<enclosure" + draw(st.sampled_from(
            ["", ' url="https://n.example/a.mp3"', ' url="a.mp3" length="1" type="audio/mpeg"'])) + "/>",
    }
    for name in draw(st.lists(st.sampled_from(sorted(singles)), unique=True, max_size=len(singles))):
        parts.append(singles[name]())
    for name in draw(st.lists(st.sampled_from(sorted(repeatable)), max_size=4)):
        parts.append(repeatable[name]())
    if not plain:
        extras = {
            "dup-title": lambda: el("title", draw(text_node())),
            "dup-description": lambda: el("description", draw(text_node())),
            "dup-date": lambda: el("pubDate", escape(draw(st.sampled_from(DATES)))),
            "markup-description": lambda: el("description", "<p>inline <b>markup</b></p>"),
            "body": lambda: el("body", draw(text_node())),
            "fullitem": lambda: el("fullitem", draw(text_node())),
            "dcterms:issued": lambda: el("dcterms:issued", escape(draw(st.sampled_from(DATES)))),
            "dcterms:modified": lambda: el("dcterms:modified", escape(draw(st.sampled_from(DATES)))),
            "dc:author": lambda: el("dc:author", draw(text_node())),
            "dc:subject": lambda: el("dc:subject", draw(text_node())),
            "dc:title": lambda: el("dc:title", draw(text_node())),
            "dc:language": lambda: el("dc:language", draw(st.sampled_from(["en", "fr-CA", ""]))),
            "media:title": lambda: el("media:title", draw(text_node())),
            "media:category": lambda: el("media:category", draw(text_node())),
            "media:content": lambda: '<media:content url="https://n.example/v.mp4"/>',
            "itunes:category": lambda: '<itunes:category text="News"><itunes:category text="Tech"/></itunes:category>',
            "x:thing": lambda: el("x:thing", draw(text_node())),
            "atom:link": lambda: '<atom:link rel="alternate" href="https://n.example/alt"/>',
            "lang-title": lambda: el("title", draw(text_node()), ' xml:lang="de"'),
            "comment-in-title": lambda: "<title>a<!-- c -->b</title>",
            "category-domain": lambda: el("category", draw(text_node()), ' domain="https://n.example/"'),
            "source": lambda: el("source", "Other", ' url="https://o.example/rss"'),
        }
        for name in draw(st.lists(st.sampled_from(sorted(extras)), min_size=1, max_size=3)):
            parts.append(extras[name]())
    order = draw(st.permutations(parts))
    return "<item>" + "".join(order) + "</item>", plain


@st.composite
def rss2(draw: st.DrawFn, plain: bool) -> str:
    head = [el("title", draw(text_node())), el("link", "https://news.example.com/"), el("description", "d")]
    optional = [el("language", draw(st.sampled_from(["en", "en-GB", "fr", ""]))),
                el("ttl", draw(st.sampled_from(["30", "0", "x", ""]))),
                el("lastBuildDate", escape(draw(st.sampled_from(DATES)))),
                el("generator", "gen"), el("copyright", "\u00a9 me"), el("docs", "https://www.rssboard.org/"),
                '<atom:link href="https://news.example.com/feed" rel="self" type="application/rss+xml"/>',
                el("sy:updatePeriod", draw(st.sampled_from(["hourly", "daily", "weekly", "bogus"]))),
                el("sy:updateFrequency", draw(st.sampled_from(["1", "4", "x"]))),
                "<image><url>https://n.example/i.png</url><title>Img title</title>"
                "<link>https://n.example/</link></image>"]
    head += draw(st.lists(st.sampled_from(optional), unique=True, max_size=len(optional)))
    if not plain and draw(st.booleans()):
        head.append(draw(st.sampled_from([
            el("dc:language", "de"), el("x:meta", "m"), el("title", "second title"),
            '<itunes:category text="News"/>', el("category", "chan-cat"), el("managingEditor", "ed@example.com (Ed)"),
        ])))
    items = [draw(rss_item(plain)) for _ in range(draw(st.integers(0, 3)))]
    channel = draw(st.permutations(head)) + [xml for xml, _ in items]
    attrs = ""
    if not plain:
        attrs = draw(st.sampled_from(["", ' xml:lang="en"', ' xml:base="https://base.example/dir/"']))
    body = "".join(channel)
    if not plain and draw(st.booleans()):
        # an item inside an unknown-namespace wrapper
        body = body.replace("<item>", "<x:wrap><item>", 1).replace("</item>", "</item></x:wrap>", 1) \
            if "<item>" in body else body
    decls = draw(st.sampled_from([PLAIN_DECLS, DECLS] if plain else [DECLS, DECLS + f' xmlns:r1="{NS["rss1"]}"']))
    return f'<rss version="2.0" {decls}><channel{attrs}>{body}</channel></rss>'


@st.composite
def atom_plain(draw: st.DrawFn) -> str:
    """Atom 1.0 from the fast path's whitelist only."""
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        singles = {
            "id": lambda: el("id", draw(text_node(st.sampled_from(URLS)))),
            "title": lambda: el("title", draw(text_node()),
                                draw(st.sampled_from(["", ' type="text"', ' type="html"']))),
            "summary": lambda: el("summary", draw(text_node()), draw(st.sampled_from(["", ' type="html"']))),
            "content": lambda: el("content", draw(text_node()), draw(st.sampled_from(
                ["", ' type="html"', ' type="text"', ' type="HTML"']))),
            "published": lambda: el("published", escape(draw(st.sampled_from(DATES)))),
            "updated": lambda: el("updated", escape(draw(st.sampled_from(DATES)))),
        }
        repeatable = {
            "link": lambda: "<link" + draw(st.sampled_from(
                [' href="https://n.example/a"', ' rel="alternate" href="/rel"', ' rel="Alternate" href="x?a=1&amp;b"',
                 ' rel="enclosure" href="https://n.example/e.mp3" length="1" type="audio/mpeg"',
                 ' rel="related" href="https://n.example/r"', ' href="https://n.example/p.pdf" type="application/pdf"',
                 ' rel="alternate" type="xhtml" href="/x"', ' rel="self" href="/self"'])) + "/>",
            "author": lambda: el("author", el("name", draw(text_node(st.sampled_from(["Ann", "B\u00e9a", " Cy "]))))
                                 + draw(st.sampled_from(["", el("email", "me@example.com"), el("uri", "/me")]))),
            "category": lambda: "<category" + draw(st.sampled_from(
                [' term="World"', ' term="World" scheme="s"', ' scheme="s"', ' term="Caf\u00e9" label="L"',
                 ""])) + "/>",
        }
        parts = [singles[n]() for n in draw(st.lists(st.sampled_from(sorted(singles)), unique=True, max_size=6))]
        parts += [repeatable[n]() for n in draw(st.lists(st.sampled_from(sorted(repeatable)), max_size=5))]
        entries.append("<entry>" + "".join(draw(st.permutations(parts))) + "</entry>")
    head = [el("title", draw(text_node())), el("id", "https://n.example/")]
    head += draw(st.lists(st.sampled_from([
        el("updated", "2026-02-04T10:00:00Z"), '<link rel="self" href="https://n.example/feed"/>',
        '<link href="https://n.example/"/>', el("subtitle", "s", ' type="html"'), el("generator", "g", ' uri="/g"'),
        el("icon", "/i.png"), el("rights", "r"), el("author", el("name", "Feed author")), '<category term="c"/>',
    ]), unique=True, max_size=5))
    root_lang = draw(st.sampled_from(["", ' xml:lang="en-GB"', ' xml:lang="en_US"', ' xml:lang=""']))
    body = "".join(draw(st.permutations(head))) + "".join(entries)
    return f'<feed xmlns="http://www.w3.org/2005/Atom" {PLAIN_DECLS}{root_lang}>{body}</feed>'


@st.composite
def atom(draw: st.DrawFn) -> str:
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        parts = [el("id", draw(text_node(st.sampled_from(URLS))))]
        pool = {
            "title": lambda: el("title", draw(text_node()), draw(st.sampled_from(
                ["", ' type="text"', ' type="html"', ' type="application/xhtml+xml"']))),
            "xhtml-title": lambda: '<title type="xhtml"><xhtml:div>X <xhtml:b>t</xhtml:b></xhtml:div></title>',
            "link": lambda: "<link" + draw(st.sampled_from(
                [' href="https://n.example/a"', ' rel="alternate" href="/rel"', ' rel="enclosure"',
                 ' rel="enclosure" href="https://n.example/e.mp3"',
                 ' rel="related" href="https://n.example/r"'])) + "/>",
            "summary": lambda: el("summary", draw(text_node()), draw(st.sampled_from(["", ' type="html"']))),
            "content": lambda: el("content", draw(text_node()), draw(st.sampled_from(
                ["", ' type="html"', ' type="text"', ' type="text/plain"']))),
            "base64": lambda: el("content", "PHA+aGk8L3A+", ' type="text/html" mode="base64"'),
            "base64-type": lambda: el("content", "PHA+aGk8L3A+", ' type="base64"'),
            "div": lambda: '<content type="xhtml"><xhtml:div>&lt;b&gt;escaped&lt;/b&gt; <xhtml:i>i</xhtml:i>'
                           "</xhtml:div></content>",
            "published": lambda: el("published", escape(draw(st.sampled_from(DATES)))),
            "updated": lambda: el("updated", escape(draw(st.sampled_from(DATES)))),
            "updated2": lambda: el("updated", "2026-03-01T00:00:00Z"),
            "author": lambda: el("author", el("name", draw(text_node())) + el("email", "me@example.com")),
            "category": lambda: f'<category term={quoteattr(draw(texts))}/>',
            "dc:subject": lambda: el("dc:subject", draw(text_node())),
            "media:title": lambda: el("media:title", draw(text_node())),
        }
        for name in draw(st.lists(st.sampled_from(sorted(pool)), max_size=6)):
            parts.append(pool[name]())
        lang = draw(st.sampled_from(["", ' xml:lang="fr"']))
        entries.append(f"<entry{lang}>" + "".join(draw(st.permutations(parts))) + "</entry>")
    root_lang = draw(st.sampled_from(["", ' xml:lang="en-GB"']))
    return (f'<feed xmlns="http://www.w3.org/2005/Atom" {DECLS} xmlns:xhtml="{NS["xhtml"]}"{root_lang}>'
            f"{el('title', draw(text_node()))}<id>https://n.example/</id>" + "".join(entries) + "</feed>")


@st.composite
def rss1(draw: st.DrawFn) -> str:
    items = []
    for n in range(draw(st.integers(0, 3))):
        parts = [el("title", draw(text_node())), el("link", draw(text_node(st.sampled_from(URLS))))]
        parts += draw(st.lists(st.sampled_from([
            el("description", escape(draw(texts))), el("content:encoded", escape(draw(texts))),
            el("dc:date", escape(draw(st.sampled_from(DATES)))), el("dc:creator", escape(draw(texts))),
            el("dc:subject", escape(draw(texts))), el("dc:language", "fr"), el("dcterms:modified", "2026-02-04"),
        ]), max_size=4))
        items.append(f'<item rdf:about="https://n.example/{n}">' + "".join(parts) + "</item>")
    return (f'<rdf:RDF xmlns:rdf="{NS["rdf"]}" xmlns="{NS["rss1"]}" {DECLS}>'
            f'<channel rdf:about="https://n.example/"><title>{escape(draw(texts))}</title>'
            f"<link>https://n.example/</link><description>d</description></channel>" + "".join(items) + "</rdf:RDF>")


# (name in the XML declaration or None, codec, BOM, HTTP Content-Type)
ENCODINGS = [
    ("utf-8", "utf-8", b"", "application/rss+xml"),
    ("utf-8", "utf-8", b"", None),
    (None, "utf-8", b"", "application/rss+xml; charset=utf-8"),
    (None, "utf-8", codecs.BOM_UTF8, None),
    ("iso-8859-1", "iso-8859-1", b"", "application/xml"),
    ("windows-1252", "cp1252", b"", "text/xml; charset=windows-1252"),
    ("utf-8", "cp1252", b"", "text/xml; charset=windows-1252"),  # the HTTP charset overrides the declaration
    ("utf-8", "cp1252", b"", None),  # cp1252 bytes declared utf-8: a conflict
    ("utf-16", "utf-16-le", codecs.BOM_UTF16_LE, None),
    ("utf-16", "utf-16-be", codecs.BOM_UTF16_BE, "application/xml"),
    ("utf-16be", "utf-16-be", b"", None),
    (None, "utf-32-le", codecs.BOM_UTF32_LE, None),
    ("utf-8", "utf-8", b"", "text/html"),
]
PLAIN_ENCODINGS = [0, 1, 2, 3, 4, 5, 6]


@st.composite
def documents(draw: st.DrawFn) -> Doc:
    kind = draw(st.sampled_from(["rss2-plain", "rss2-plain", "rss2", "atom-plain", "atom", "rss1"]))
    plain = kind.endswith("-plain")
    xml = {"rss2-plain": lambda: draw(rss2(True)), "rss2": lambda: draw(rss2(False)),
           "atom-plain": lambda: draw(atom_plain()), "atom": lambda: draw(atom()), "rss1": lambda: draw(rss1())}[kind]()
    index = draw(st.sampled_from(PLAIN_ENCODINGS if plain else range(len(ENCODINGS))))
    declared, codec, bom, ctype = ENCODINGS[index]
    decl = f'<?xml version="1.0" encoding="{declared}"?>\n' if declared else ""
    body = bom + (decl + xml).encode(codec, "xmlcharrefreplace")
    return Doc(body, ctype, plain)
