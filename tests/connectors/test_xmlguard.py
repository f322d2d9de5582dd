"""The hostile-XML guard decides on expat's view of the prolog, in every decoding a parser may apply (issue 14)."""

from __future__ import annotations

import codecs

import pytest

from connectors.parser import parse_feed
from connectors.xmlguard import MAX_ENTITY_CHARS, refuse_hostile_xml, spec_decoding
from pipeline.errors import HostileXML, NotAFeed

URL = "https://feeds.example.com/feed"
CHANNEL = '<rss version="2.0"><channel><title>t</title><link>https://x.example/</link><description>d</description>'


def _rss(prolog: str, item: str) -> str:
    return f"{prolog}{CHANNEL}<item>{item}</item></channel></rss>"


LAUGHS = ('<!DOCTYPE rss [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
          '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>')
HOSTILE = {
    "billion-laughs": _rss(LAUGHS, "<title>&lol3;</title>"),
    "quadratic-blowup": _rss(f'<!DOCTYPE rss [<!ENTITY a "{"x" * 50_000}">]>', "<title>" + "&a;" * 2000 + "</title>"),
    "external-system": _rss('<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "<title>&x;</title>"),
    "external-public": _rss('<!DOCTYPE rss [<!ENTITY x PUBLIC "-//X//EN" "http://a.example/x">]>',
                            "<title>&x;</title>"),
    "parameter-entity": _rss('<!DOCTYPE rss [<!ENTITY % p SYSTEM "http://a.example/evil.dtd"> %p;]>',
                             "<title>t</title>"),
    "unparsed-entity": _rss('<!DOCTYPE rss [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "y" NDATA n>]>',
                            "<title>t</title>"),
    "smuggled-reference": _rss('<!DOCTYPE rss [<!ENTITY a "aa"><!ENTITY b "&#38;a;&#38;a;">]>', "<title>&b;</title>"),
    "markup-entity": _rss('<!DOCTYPE rss [<!ENTITY m "&#60;item/&#62;">]>', "<title>&m;</title>"),
    "attlist": _rss('<!DOCTYPE rss [<!ATTLIST item xml:base CDATA "http://evil.example/">]>', "<title>t</title>"),
    "element-with-external-dtd": _rss('<!DOCTYPE rss SYSTEM "http://a.example/evil.dtd" [<!ELEMENT rss ANY>]>',
                                      "<title>t</title>"),
    "long-entity": _rss(f'<!DOCTYPE rss [<!ENTITY a "{"x" * (MAX_ENTITY_CHARS + 1)}">]>', "<title>&a;</title>"),
    "unterminated-subset": _rss('<!DOCTYPE rss [<!ENTITY a "x"> <!ENTITY', "<title>t</title>"),
    # feedparser's replace_doctype would resurrect this declaration from the comment and expand it.
    "entity-in-a-subset-comment": _rss(f'\n<!DOCTYPE rss [\n<!--\n<!ENTITY a "{"x" * 1000}">\n-->\n]>',
                                       "<title>&a;&a;</title>"),
    # After a reference to an undeclared parameter entity expat stops reporting declarations.
    "undeclared-parameter-reference": _rss('<!DOCTYPE rss [%x; <!ENTITY b SYSTEM "file:///etc/passwd">]>',
                                           "<title>&b;</title>"),
}

# Posts about XML: the declarations are in CDATA or escaped text, not in the prolog.
MENTIONS = {
    "cdata": _rss("", '<title>XML tips</title><description><![CDATA[Never accept <!ENTITY lol "lol"> or '
                      "<!DOCTYPE x [ ... ]> from strangers]]></description>"),
    "escaped": _rss("", "<title>XML tips</title><description>Write &lt;!ENTITY a SYSTEM \"file:///\"&gt; and "
                        "&lt;!DOCTYPE x [ ]&gt; to test a parser</description>"),
    "in-title": _rss("", "<title>&lt;!DOCTYPE html [ &lt;!ENTITY&gt; ]&gt; explained</title>"),
}
ACCEPTED = {
    "simple-entity": _rss('<!DOCTYPE rss [<!ENTITY id "tag:example.com,">]>',
                          "<guid>&id;2026:1</guid><title>t</title>"),
    "char-ref-entity": _rss('<!DOCTYPE rss [<!ENTITY rsquo "&#8217;">]>', "<title>don&rsquo;t</title>"),
    "declarations-in-a-subset-comment": _rss('<!DOCTYPE rss [<!-- <!ENTITY x SYSTEM "y"> %p; -->]>',
                                             "<title>t</title>"),
    "public-doctype": _rss('<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
                           '"http://my.netscape.com/publish/formats/rss-0.91.dtd">', "<title>t</title>"),
    **MENTIONS,
}

DECL = {"utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "utf-32-le": "UTF-32", "utf-32-be": "UTF-32"}
BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}
# Every UTF-16/32 variant: both byte orders, with and without a BOM, with and without an XML declaration.
VARIANTS = [(codec, bom, decl) for codec in DECL for bom in (True, False) for decl in (True, False)]


def _encode(text: str, codec: str, bom: bool, decl: bool) -> bytes:
    if decl:
        text = f'<?xml version="1.0" encoding="{DECL[codec]}"?>{text}'
    return (BOMS[codec] if bom else b"") + text.encode(codec)


def _vid(v: tuple[str, bool, bool]) -> str:
    return f"{v[0]}{'-bom' if v[1] else ''}{'-decl' if v[2] else ''}"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_prologs_are_refused(name: str) -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?>' + HOSTILE[name]).encode()
    with pytest.raises(HostileXML) as err:
        parse_feed(body, feed_url=URL)
    assert err.value.kind == "hostile_xml" and err.value.feed_url == URL


@pytest.mark.parametrize("variant", VARIANTS, ids=_vid)
@pytest.mark.parametrize("name", ["billion-laughs", "external-system", "parameter-entity"])
def test_hostile_prologs_are_refused_in_every_utf16_and_utf32_variant(name: str, variant: tuple) -> None:
    with pytest.raises(HostileXML):
        parse_feed(_encode(HOSTILE[name], *variant), feed_url=URL)


@pytest.mark.parametrize("variant", VARIANTS, ids=_vid)
def test_wide_encodings_are_not_refused_for_mentions(variant: tuple) -> None:
    refuse_hostile_xml(_encode(MENTIONS["cdata"], *variant), feed_url=URL)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_legitimate_documents_are_accepted(name: str) -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?>' + ACCEPTED[name]).encode()
    (item,) = parse_feed(body, feed_url=URL).items
    assert item.title
    if name in MENTIONS:
        assert "ENTITY" in (item.summary or "") + item.title
    if name == "simple-entity":
        assert item.guid == "tag:example.com,2026:1"
    if name == "char-ref-entity":
        assert item.title == "don\u2019t"


def test_http_charset_decides_the_decoding_the_guard_reads() -> None:
    # Served as UTF-16 without a BOM or declaration: feedparser decodes with the HTTP charset.
    body = HOSTILE["billion-laughs"].encode("utf-16-le")
    with pytest.raises(HostileXML):
        refuse_hostile_xml(body, feed_url=URL, content_type="application/xml; charset=utf-16le")


def test_html_pages_are_not_a_feed_not_hostile() -> None:
    with pytest.raises(NotAFeed):
        parse_feed(b"<!doctype html><html><head><title>x</title></head><body>hi</body></html>", feed_url=URL)


@pytest.mark.parametrize(("head", "expected"), [
    (codecs.BOM_UTF32_LE + b"<\0\0\0", "utf-32-le"), (codecs.BOM_UTF32_BE + b"\0\0\0<", "utf-32-be"),
    (b"<\0\0\0?\0\0\0", "utf-32-le"), (b"\0\0\0<\0\0\0?", "utf-32-be"), (b"\0<\0?", "utf-16-be"),
    (b"<\0?\0", "utf-16-le"), (codecs.BOM_UTF16_LE + b"<\0", "utf-16-le"), (b"<?xml", None),
    (codecs.BOM_UTF8 + b"<?xml", "utf-8-sig"),
])
def test_spec_decoding(head: bytes, expected: str | None) -> None:
    assert spec_decoding(head) == expected
