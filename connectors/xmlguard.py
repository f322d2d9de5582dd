"""The hostile-XML guard: decide on the XML parser's own view of the prolog, never on a byte search.

The document's prolog (XML declaration, DOCTYPE, internal subset) is read by expat, which stops at the
first element, so no entity is ever expanded and a post that merely *mentions* ``<!ENTITY`` in its
CDATA or escaped text is never looked at. The prolog is read in every decoding a parser could apply:

1. feedparser's (``convert_to_utf8``: BOM, XML declaration, HTTP charset), which is also the text the
   lxml fast path parses, and the same after feedparser's ``replace_doctype`` (what its parser reads);
2. the XML specification's own detection (appendix F): a BOM, or the zero-byte pattern of UTF-16 and
   UTF-32 without one, so a BOM-less UTF-16/32 document cannot hide its declarations from step 1.

Rules (docs/feed-parsing.md): a DOCTYPE without internal subset is accepted (neither parser fetches
external DTDs); in an internal subset only *simple* internal general entities are accepted, i.e. a
replacement text of at most :data:`MAX_ENTITY_CHARS` characters holding no ``&``, ``%`` or ``<``
(it cannot refer to another entity, so it cannot grow: feedparser's own ``replace_doctype`` keeps the
same kind). Refused: parameter entities (declared or referred to), external (SYSTEM/PUBLIC) and
unparsed entities, entities that refer to entities or hold markup, longer ones, ELEMENT/ATTLIST/NOTATION
declarations (they change what parsers see, and feeds do not need them), and an internal subset the
parser cannot read to its end.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from xml.parsers import expat

from feedparser.api import replace_doctype

from connectors.fastxml import decode_like_feedparser, feedparser_headers
from pipeline.errors import HostileXML

__all__ = ["MAX_ENTITY_CHARS", "refuse_hostile_xml", "spec_decoding"]

# Replacement text of an accepted entity: each reference (at least 3 characters, "&a;") grows by at
# most this much, so a document can grow by about 30x at worst, within the fetch size limit.
MAX_ENTITY_CHARS = 100


class _Refused(Exception):
    pass


class _Root(Exception):
    """The first element: the prolog is over."""


def spec_decoding(body: bytes) -> str | None:
    """The encoding the XML spec's autodetection gives for a BOM or a UTF-16/32 zero-byte pattern, or None."""
    head = body[:4]
    for bom, name in ((codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF32_LE, "utf-32-le"),
                      (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_BE, "utf-16-be"),
                      (codecs.BOM_UTF16_LE, "utf-16-le")):
        if head.startswith(bom):
            return name
    if len(head) < 4:
        return None
    zero = [b == 0 for b in head]
    if zero == [True, True, True, False]:
        return "utf-32-be"
    if zero == [False, True, True, True]:
        return "utf-32-le"
    if zero[0] and not zero[1] and zero[2] and not zero[3]:
        return "utf-16-be"
    if not zero[0] and zero[1] and not zero[2] and zero[3]:
        return "utf-16-le"
    return None


def _entity(name: str, is_parameter: int, value: str | None, _base: str | None, system_id: str | None,
            public_id: str | None, notation: str | None) -> None:
    if is_parameter:
        raise _Refused(f"parameter entity %{name}; is declared")
    if value is None or system_id or public_id or notation:
        raise _Refused(f"external entity &{name}; is declared")
    # expat gives the replacement text (character references already applied), so "&#38;b;" shows as "&b;".
    if any(c in value for c in "&%<"):
        raise _Refused(f"entity &{name}; refers to other entities or holds markup")
    if len(value) > MAX_ENTITY_CHARS:
        raise _Refused(f"entity &{name}; is longer than {MAX_ENTITY_CHARS} characters")


_DECLARATIONS = frozenset({"<!ENTITY", "<!ELEMENT", "<!ATTLIST", "<!NOTATION"})


def _unreported(data: str) -> None:
    if data.startswith("%"):
        raise _Refused(f"the internal subset refers to parameter entity {data}")
    if data in _DECLARATIONS:
        raise _Refused(f"the internal subset has a declaration the parser skipped ({data})")


def _declaration(kind: str) -> Callable[..., None]:
    def refuse(*_args: object) -> None:
        raise _Refused(f"the internal subset declares {kind}")
    return refuse


def _check_prolog(data: bytes) -> str | None:
    """Why the prolog of ``data`` (UTF-8) is refused, or None."""
    parser = expat.ParserCreate(encoding="utf-8")  # overrides the declared encoding: data is UTF-8 here
    subset = {"open": False}

    def doctype(_name: str, _sysid: str | None, _pubid: str | None, has_internal_subset: int) -> None:
        subset["open"] = bool(has_internal_subset)

    def doctype_end() -> None:
        subset["open"] = False

    def root(*_args: object) -> None:
        raise _Root

    parser.StartDoctypeDeclHandler = doctype
    parser.EndDoctypeDeclHandler = doctype_end
    parser.EntityDeclHandler = _entity
    parser.ElementDeclHandler = _declaration("an element type")
    parser.AttlistDeclHandler = _declaration("attributes")
    parser.NotationDeclHandler = _declaration("a notation")
    parser.StartElementHandler = root
    # A reference to an undeclared parameter entity makes expat stop reporting the declarations after it
    # (they reach the default handler as bare tokens instead), which would hide them: refuse both.
    parser.DefaultHandler = _unreported
    try:
        parser.Parse(data, True)
    except _Root:
        return None
    except _Refused as refused:
        return str(refused)
    except expat.ExpatError:
        # Not well-formed before the root. Inside an internal subset that is refused; elsewhere neither
        # parser expands anything (lxml rejects the document, feedparser's loose parser keeps only
        # simple entities) and it is most likely not a feed at all, which the parsers report.
        if subset["open"]:
            return "the DTD internal subset is not well-formed"
    return None


def refuse_hostile_xml(body: bytes, *, feed_url: str, content_type: str | None = None,
                       decoded: bytes | None = None) -> None:
    """Raise HostileXML when the prolog declares what the rules above refuse, in any decoding a parser may use.

    Args:
        body: the document as fetched.
        content_type: the response Content-Type (its charset can decide feedparser's decoding).
        decoded: feedparser's decoding of ``body`` (``decode_like_feedparser``) when the caller has it already.
    """
    if decoded is None:
        decoded, _ = decode_like_feedparser(body, feedparser_headers(feed_url, content_type))
    texts = [decoded]
    # feedparser rewrites the DOCTYPE by regular expression before its parser runs, and can pick up an
    # entity declaration that the XML parser saw as a comment: read its rewritten prolog as well.
    if (rewritten := replace_doctype(decoded)[1]) != decoded:
        texts.append(rewritten)
    if (encoding := spec_decoding(body)) is not None:
        texts.append(body.decode(encoding, "replace").encode("utf-8"))
    for data in texts:
        if reason := _check_prolog(data):
            raise HostileXML(f"refused: {reason} (entity expansion / external entity attack); "
                             "see docs/feed-parsing.md", feed_url=feed_url)
